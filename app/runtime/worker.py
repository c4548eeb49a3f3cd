"""The worker process (`python worker.py [--burst] [--no-cron] [--no-notifications]
[--queues a,b] [--concurrency N] [--metrics-port N]`): everything PayBridge does in the
background, and its own /metrics (app/runtime/metrics_server.py).

Two things run in this process:
- the notification pump (app/notifications/pump.py): delivers the outbox's due notifications,
  `NOTIFY_CONCURRENCY` POSTs at once, claiming and recording them in batches. Notifications are
  not RQ jobs: one job per attempt cost more CPU in RQ's bookkeeping (about 55 Redis commands,
  registries, the job hash) than the delivery itself, and the outbox row already is the record
  of what is due, claimed and done;
- RQ: workers of the recon and default queues, and RQ's cron scheduler (the periodic jobs of
  app/tasks/schedule.py: reconciliation, housekeeping) in a thread.

Delivering notifications needs only the database: the pump starts first, and while Redis does
not answer the worker says so and keeps delivering; RQ's part starts once Redis answers. An
outage is logged once when it begins, then once a minute while it lasts, and once when Redis
answers again (RedisOutageLog): RQ's workers, their pubsub threads and the cron thread each
notice it several times a second, and an operator needs one line, not a flood.

Why threads for RQ (`--concurrency`, `WORKER_CONCURRENCY`): a reconciliation run and a
housekeeping job may run at once. The main worker runs beside N-1 helper workers, each a full RQ
worker in a thread of this process (own name, heartbeat and registries), sharing the DB pool
and the Redis client.

Why SimpleWorker (no fork per job): RQ's default Worker forks a work horse for every job, and a
forked child inheriting the parent's SQLAlchemy pool would share its MySQL sockets. With
SimpleWorker jobs run in this process, each inside a fresh app context, so there is no fork to
share a connection across, and the pool is reused between jobs instead of reconnecting for
every job. The price: a job that leaks memory or crashes the interpreter takes the worker with
it, which the process manager restarts; jobs are idempotent, and notifications whose delivery
was cut short are claimed again when their lease runs out. RQ's delayed-job scheduler (its own
forked process) is not started: no job is enqueued for later or retried on a schedule, so this
process never forks.

SIGTERM (or Ctrl-C) is a warm shutdown: the current job and every notification POST in flight
finish (and are recorded), then the worker exits; a second signal stops at once.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time

from flask import Flask
from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.exceptions import StopRequested
from rq.timeouts import TimerDeathPenalty
from rq.worker import WorkerStatus

from app import create_app
from app.extensions import get_redis
from app.notifications.pump import NotificationPump
from app.runtime.metrics_server import MetricsServer
from app.runtime.process_tuning import limit_malloc_arenas
from app.tasks import QUEUE_NAMES, get_queue
from app.tasks.schedule import build_cron

log = logging.getLogger("paybridge.worker")

CRON_LEADER_TTL_SECONDS = 60
CRON_MAX_SLEEP_SECONDS = 10.0
# RQ heartbeats its worker key twice per job, three Redis calls each, though the key lives
# worker_ttl + 60 s (80 s for a helper): one heartbeat every few seconds keeps it just as alive.
HEARTBEAT_MIN_INTERVAL_SECONDS = 5.0
# RQ's INFO lines for every job that went well ("dequeued", "Job OK", "Successfully
# completed"): the job's own log line says what it did, and three more per delivery were a
# measurable share of the worker's CPU. Failures, retries and lifecycle lines still show.
_ROUTINE_JOB_LINES = frozenset(
    {
        "Worker %s: %s: %s (%s)",
        "Worker %s: %s: %s",
        "Successfully completed %s job in %ss on worker %s",
        "Successfully completed job %s in %ss on worker %s",
    }
)


def quiet_routine_job_lines(record: logging.LogRecord) -> bool:
    """A logging filter for `rq.worker`: drop the per-job success lines, keep everything else."""
    return not (record.levelno == logging.INFO and record.msg in _ROUTINE_JOB_LINES)


# While Redis stays unreachable, how often the worker says so again.
REDIS_OUTAGE_LOG_SECONDS = 60.0
# RQ's own line for a failed Redis call in its dequeue loop and its pubsub thread (RQ 3.0): each
# worker thread logs it every 1-2 s for as long as the outage lasts; and the one (with a
# traceback) when a failed call elsewhere ends its loop.
_RQ_REDIS_DOWN_LINE = "Worker %s: could not connect to Redis instance: %s retrying in %d seconds..."
_RQ_GIVES_UP_LINE = "Worker %s: found an unhandled exception, quitting..."


class RedisOutageLog:
    """The worker's one voice about a Redis outage, however many of its threads notice it:
    a warning when it begins, a reminder every `interval` seconds while it lasts, a line when
    Redis answers again. Also a logging filter for `rq.worker` that takes RQ's own per-retry
    lines over."""

    def __init__(self, interval: float = REDIS_OUTAGE_LOG_SECONDS, clock=time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.down_since: float | None = None
        self._last_said = 0.0
        self._lock = threading.Lock()

    def down(self, error: object) -> None:
        """A Redis call failed with `error`."""
        with self._lock:
            now = self.clock()
            if self.down_since is None:
                self.down_since = self._last_said = now
                first = True
            elif now - self._last_said >= self.interval:
                self._last_said = now
                first = False
            else:
                return
            lasted = now - self.down_since
        if first:
            log.warning(
                "Redis unreachable (%s): notifications are delivered meanwhile; "
                "the periodic jobs start once it answers",
                error,
            )
        else:
            log.warning(
                "Redis still unreachable after %d s (%s); notifications are still delivered",
                lasted,
                error,
            )

    def up(self) -> None:
        """A Redis call succeeded."""
        if self.down_since is None:  # the usual case: no lock taken
            return
        with self._lock:
            if self.down_since is None:
                return
            lasted = self.clock() - self.down_since
            self.down_since = None
        log.info("Redis answers again after %d s: the periodic jobs resume", lasted)

    def filter(self, record: logging.LogRecord) -> bool:
        """For the `rq.worker` logger: RQ's retry lines become `down()`, the rest pass."""
        if record.msg == _RQ_REDIS_DOWN_LINE and len(record.args or ()) == 3:
            self.down(record.args[1])
            return False
        error = record.exc_info[1] if record.exc_info else None
        if record.msg == _RQ_GIVES_UP_LINE and isinstance(error, RedisError):
            self.down(error)  # that worker is started again once Redis answers
            return False
        return True


class AppWorker(SimpleWorker):
    """A SimpleWorker that runs each job in its own app context (and so its own DB session)."""

    flask_app: Flask
    redis_outage: RedisOutageLog | None = None
    log_result_lifespan = False  # no job's result is kept or read
    _last_idle_heartbeat = 0.0

    stop_asked = False

    def execute_job(self, job, queue):
        with self.flask_app.app_context():
            return super().execute_job(job, queue)

    def request_stop(self, signum, frame):
        self.stop_asked = True  # RQ's own flag is set only when a job is in hand
        return super().request_stop(signum, frame)

    def heartbeat(self, timeout=None, pipeline=None):
        # Only RQ's plain between-jobs heartbeats are thinned out; one with its own timeout or
        # inside a job's start/finish pipeline always goes through.
        if timeout is None and pipeline is None:
            at = time.monotonic()
            if at - self._last_idle_heartbeat < HEARTBEAT_MIN_INTERVAL_SECONDS:
                return
            self._last_idle_heartbeat = at
        result = super().heartbeat(timeout, pipeline)
        if pipeline is None and self.redis_outage is not None:
            self.redis_outage.up()  # it got through: any outage is over
        return result


class HelperWorker(AppWorker):
    """An RQ worker in a thread beside the main one.

    Signals only reach the main thread, so it installs no handlers and times jobs out with a
    timer instead of SIGALRM; its short blocking dequeue lets `stop()` end it within seconds.
    """

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self):
        pass

    def stop(self) -> None:
        self._stop_requested = True

    def heartbeat(self, timeout=None, pipeline=None):
        # RQ's dequeue loop heartbeats between blocking pops and never looks at the stop flag:
        # leave it here, when no job is in hand.
        if self._stop_requested and pipeline is None and self.get_state() == WorkerStatus.IDLE:
            raise StopRequested()
        return super().heartbeat(timeout, pipeline)


# A helper's blocking dequeue lasts worker_ttl - 15 s (RQ's rule): 5 s to notice a shutdown.
HELPER_WORKER_TTL = 20
# How often a worker whose Redis does not answer asks again.
REDIS_RETRY_SECONDS = 5.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def build_worker(
    app: Flask,
    queue_names: list[str] | None = None,
    worker_class: type[AppWorker] = AppWorker,
    redis_outage: RedisOutageLog | None = None,
    **kwargs,
) -> AppWorker:
    with app.app_context():
        queues = [get_queue(name) for name in (queue_names or QUEUE_NAMES)]
    attributes = {"flask_app": app, "redis_outage": redis_outage}
    bound = type(f"PayBridge{worker_class.__name__}", (worker_class,), attributes)
    return bound(queues, connection=queues[0].connection, **kwargs)


class HelperThreads:
    """The helper workers of one process: started once Redis answers, stopped warmly.

    RQ's loop retries a Redis call that fails while it waits for a job, but gives up (the
    thread's `work()` ends) on one that fails elsewhere: registering, between jobs, recording a
    job's end. Such a helper is replaced by a fresh one (a new name: the old one's key may still
    say it is alive) once Redis answers again."""

    def __init__(self, app: Flask, main: AppWorker, count: int, queue_names, burst: bool):
        self.app = app
        self.main = main
        self.queue_names = queue_names
        self.burst = burst
        self.logging_level = str(app.config.get("LOG_LEVEL", "INFO")).upper()
        self.workers: dict[int, HelperWorker] = {}
        self.threads: list[threading.Thread] = []
        self._count = count
        self._stopping = threading.Event()

    def _make(self, index: int, attempt: int) -> HelperWorker:
        name = f"{self.main.name}.{index}" + (f"-{attempt}" if attempt else "")
        worker = build_worker(
            self.app,
            self.queue_names,
            HelperWorker,
            self.main.redis_outage,
            name=name,
            worker_ttl=HELPER_WORKER_TTL,
        )
        self.workers[index] = worker
        return worker

    def start(self) -> None:
        for index in range(1, self._count):
            thread = threading.Thread(
                target=self._run, args=(index,), name=f"{self.main.name}.{index}", daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def _run(self, index: int) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                worker = self._make(index, attempt)
                worker.work(burst=self.burst, logging_level=self.logging_level)
            except RedisError as exc:
                if self.main.redis_outage is not None:
                    self.main.redis_outage.down(exc)
            except Exception:
                log.exception("helper worker %s stopped on an error", self.main.name)
            if self.burst or self._stopping.wait(REDIS_RETRY_SECONDS):
                return
            attempt += 1

    def stop(self, timeout: float) -> None:
        """Let every helper finish the job in hand, then end (daemon threads past `timeout`).

        In burst mode helpers end by themselves once the queues are empty: wait for that.
        """
        if self.burst:
            for thread in self.threads:
                thread.join()
            return
        self._stopping.set()
        for worker in list(self.workers.values()):
            worker.stop()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class CronThread(threading.Thread):
    """Drives RQ's CronScheduler in a thread (its own start() wants the main thread's signals).

    With several worker processes only one enqueues periodic jobs: a Redis key with a TTL
    elects the leader, so a dead leader is replaced within CRON_LEADER_TTL_SECONDS.
    """

    def __init__(self, app: Flask, redis_outage: RedisOutageLog) -> None:
        super().__init__(name="cron", daemon=True)
        self.redis_outage = redis_outage
        self.connection = get_redis(app)
        self.cron = build_cron(app, self.connection)
        self.leader_key = f"{app.config['RQ_QUEUE_PREFIX']}:cron-leader"
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def _is_leader(self) -> bool:
        name = self.cron.name
        if self.connection.set(self.leader_key, name, nx=True, ex=CRON_LEADER_TTL_SECONDS):
            return True
        current = self.connection.get(self.leader_key)
        if current is not None and current.decode() == name:
            self.connection.expire(self.leader_key, CRON_LEADER_TTL_SECONDS)
            return True
        return False

    def run(self) -> None:
        registered = False
        while not self._stop_event.is_set():
            sleep = CRON_MAX_SLEEP_SECONDS
            try:
                if not registered:
                    self.cron.register_birth()
                    registered = True
                if self._is_leader():
                    if self.cron.enqueue_jobs():
                        self.cron.save()
                    sleep = min(self.cron.calculate_sleep_interval(), CRON_MAX_SLEEP_SECONDS)
                self.cron.heartbeat()
                self.redis_outage.up()
            except RedisError as exc:
                self.redis_outage.down(exc)
            except Exception:
                log.exception("cron scheduler: unexpected error; retrying")
            self._stop_event.wait(max(sleep, 0.5))
        try:
            current = self.connection.get(self.leader_key)
            if current is not None and current.decode() == self.cron.name:
                self.connection.delete(self.leader_key)
            if registered:
                self.cron.register_death()
        except RedisError:
            pass


def wait_for_redis(
    app: Flask, outage: RedisOutageLog, stop: threading.Event, *, burst: bool
) -> bool:
    """Until Redis answers (True), or `stop` is set, or, in burst mode, at once (False).

    Meanwhile the pump keeps delivering: only the periodic jobs wait for Redis."""
    while not stop.is_set():
        try:
            get_redis(app).ping()
            outage.up()
            return not stop.is_set()
        except RedisError as exc:
            if burst:
                log.warning("Redis unreachable (%s): no queued jobs run in this burst", exc)
                return False
            outage.down(exc)
        stop.wait(REDIS_RETRY_SECONDS)
    return False


def run_rq(app: Flask, args, queue_names, concurrency: int, outage: RedisOutageLog) -> None:
    """RQ's side of the worker: its workers and the cron thread, once Redis answers.

    Started again when a Redis outage ends the main RQ worker's loop (RQ gives up on a failed
    Redis call outside its wait for jobs), so an outage never ends the process: the pump, in
    its own threads, delivers throughout. Returns on a stop signal, or when a burst is done."""
    stop = threading.Event()

    def listen() -> None:  # RQ's work() puts its own handlers in place while it runs
        for sig in STOP_SIGNALS:
            signal.signal(sig, lambda *_: stop.set())

    listen()
    attempt = 0
    while wait_for_redis(app, outage, stop, burst=args.burst):
        name = args.name and (f"{args.name}-{attempt}" if attempt else args.name)
        worker = build_worker(app, queue_names, redis_outage=outage, name=name)
        helpers = HelperThreads(app, worker, concurrency, queue_names, args.burst)
        cron = None
        try:
            helpers.start()
            if not args.burst and not args.no_cron:
                cron = CronThread(app, outage)
                cron.start()
            worker.work(
                burst=args.burst,
                with_scheduler=False,
                logging_level=str(app.config.get("LOG_LEVEL", "INFO")).upper(),
            )
        except RedisError as exc:  # registering or saying goodbye could not reach Redis
            outage.down(exc)
        finally:
            listen()
            helpers.stop(timeout=_warm_stop_timeout(app))
            if cron and cron.is_alive():
                cron.stop()
                cron.join(timeout=5)
        if args.burst or worker.stop_asked or stop.is_set():
            return
        attempt += 1
        if stop.wait(REDIS_RETRY_SECONDS):  # whatever ended it, not again at once
            return


def _warm_stop_timeout(app: Flask) -> float:
    """Long enough for the job or POSTs in hand to finish or time out, and be recorded."""
    return float(app.config["NOTIFY_TIMEOUT_SECONDS"]) + HELPER_WORKER_TTL


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="PayBridge background worker (RQ)")
    parser.add_argument("--burst", action="store_true", help="run queued jobs, then exit")
    parser.add_argument("--no-cron", action="store_true", help="do not enqueue periodic jobs")
    parser.add_argument("--queues", help="comma-separated queue names (default: all)")
    parser.add_argument("--name", help="worker name (default: RQ's)")
    parser.add_argument(
        "--concurrency",
        type=int,
        help="jobs run at once, in threads (default: WORKER_CONCURRENCY)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="port of this process's /metrics (default: WORKER_METRICS_PORT; 0: none); each "
        "worker on one host needs its own",
    )
    parser.add_argument(
        "--no-notifications",
        action="store_true",
        help="do not run the notification pump (RQ jobs only)",
    )
    args = parser.parse_args(argv)

    limit_malloc_arenas()  # before any thread starts (the pump's delivery threads)
    app = create_app()
    redis_outage = RedisOutageLog()
    logging.getLogger("rq.worker").addFilter(quiet_routine_job_lines)
    logging.getLogger("rq.worker").addFilter(redis_outage.filter)
    pump = None
    if not args.no_notifications:
        pump = NotificationPump(app, concurrency=app.config["NOTIFY_CONCURRENCY"], burst=args.burst)
    concurrency = args.concurrency or app.config["WORKER_CONCURRENCY"]
    if concurrency < 1:
        parser.error("--concurrency must be at least 1")
    queue_names = [q.strip() for q in args.queues.split(",")] if args.queues else None
    metrics_port = args.metrics_port
    if metrics_port is None:
        metrics_port = app.config["WORKER_METRICS_PORT"]
    if not 0 <= metrics_port <= 65535:
        parser.error("--metrics-port must be a port from 1 to 65535, or 0 for none")
    metrics = MetricsServer(app, app.config["WORKER_METRICS_HOST"], metrics_port)
    if metrics_port:
        metrics.start()
    if pump is not None:
        pump.start()
    try:
        run_rq(app, args, queue_names, concurrency, redis_outage)
    finally:
        metrics.stop()
        if pump is not None:
            if args.burst:
                pump.join()  # a burst pump ends by itself once nothing is due
            pump.stop(timeout=_warm_stop_timeout(app))
    return 0
