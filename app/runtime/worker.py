"""The worker process (`python worker.py [--burst] [--no-cron] [--no-notifications]
[--queues a,b] [--concurrency N]`): everything PayBridge does in the background.

Two things run in this process:
- the notification pump (app/notifications/pump.py): delivers the outbox's due notifications,
  `NOTIFY_CONCURRENCY` POSTs at once, claiming and recording them in batches. Notifications are
  not RQ jobs: one job per attempt cost more CPU in RQ's bookkeeping (about 55 Redis commands,
  registries, the job hash) than the delivery itself, and the outbox row already is the record
  of what is due, claimed and done;
- RQ: workers of the recon and default queues, and RQ's cron scheduler (the periodic jobs of
  app/tasks/schedule.py: reconciliation, housekeeping) in a thread.

Delivering notifications needs only the database: the pump starts first, and while Redis does
not answer the worker says so and keeps delivering; RQ's part starts once Redis answers.

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


class AppWorker(SimpleWorker):
    """A SimpleWorker that runs each job in its own app context (and so its own DB session)."""

    flask_app: Flask
    log_result_lifespan = False  # no job's result is kept or read
    _last_idle_heartbeat = 0.0

    def execute_job(self, job, queue):
        with self.flask_app.app_context():
            return super().execute_job(job, queue)

    def heartbeat(self, timeout=None, pipeline=None):
        # Only RQ's plain between-jobs heartbeats are thinned out; one with its own timeout or
        # inside a job's start/finish pipeline always goes through.
        if timeout is None and pipeline is None:
            at = time.monotonic()
            if at - self._last_idle_heartbeat < HEARTBEAT_MIN_INTERVAL_SECONDS:
                return
            self._last_idle_heartbeat = at
        return super().heartbeat(timeout, pipeline)


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
    **kwargs,
) -> AppWorker:
    with app.app_context():
        queues = [get_queue(name) for name in (queue_names or QUEUE_NAMES)]
    bound = type(f"PayBridge{worker_class.__name__}", (worker_class,), {"flask_app": app})
    return bound(queues, connection=queues[0].connection, **kwargs)


class HelperThreads:
    """The helper workers of one process: started once Redis answers, stopped warmly."""

    def __init__(self, app: Flask, main: AppWorker, count: int, queue_names, burst: bool):
        self.burst = burst
        self.logging_level = str(app.config.get("LOG_LEVEL", "INFO")).upper()
        self.workers = [
            build_worker(
                app,
                queue_names,
                HelperWorker,
                name=f"{main.name}.{i}",
                worker_ttl=HELPER_WORKER_TTL,
            )
            for i in range(1, count)
        ]
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for worker in self.workers:
            thread = threading.Thread(
                target=self._run, args=(worker,), name=worker.name, daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def _run(self, worker: HelperWorker) -> None:
        try:
            worker.work(burst=self.burst, logging_level=self.logging_level)
        except Exception:
            log.exception("helper worker %s stopped on an error", worker.name)

    def stop(self, timeout: float) -> None:
        """Let every helper finish the job in hand, then end (daemon threads past `timeout`).

        In burst mode helpers end by themselves once the queues are empty: wait for that.
        """
        if self.burst:
            for thread in self.threads:
                thread.join()
            return
        for worker in self.workers:
            worker.stop()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class CronThread(threading.Thread):
    """Drives RQ's CronScheduler in a thread (its own start() wants the main thread's signals).

    With several worker processes only one enqueues periodic jobs: a Redis key with a TTL
    elects the leader, so a dead leader is replaced within CRON_LEADER_TTL_SECONDS.
    """

    def __init__(self, app: Flask) -> None:
        super().__init__(name="cron", daemon=True)
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
            except RedisError as exc:
                log.warning("cron scheduler: Redis unreachable (%s); retrying", exc)
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


def wait_for_redis(app: Flask, *, burst: bool) -> bool:
    """Until Redis answers (True), or a signal asks to stop, or, in burst mode, at once (False).

    Meanwhile the pump keeps delivering: only the periodic jobs wait for Redis."""
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        warned = False
        while True:
            try:
                get_redis(app).ping()
                return not stop.is_set()
            except RedisError as exc:
                if burst:
                    log.warning("Redis unreachable (%s): no queued jobs run in this burst", exc)
                    return False
                if not warned:
                    log.warning(
                        "Redis unreachable (%s): notifications are delivered meanwhile; "
                        "the periodic jobs start once it answers",
                        exc,
                    )
                    warned = True
            if stop.wait(REDIS_RETRY_SECONDS):
                return False
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


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
        "--no-notifications",
        action="store_true",
        help="do not run the notification pump (RQ jobs only)",
    )
    args = parser.parse_args(argv)

    limit_malloc_arenas()  # before any thread starts (the pump's delivery threads)
    app = create_app()
    logging.getLogger("rq.worker").addFilter(quiet_routine_job_lines)
    pump = None
    if not args.no_notifications:
        pump = NotificationPump(app, concurrency=app.config["NOTIFY_CONCURRENCY"], burst=args.burst)
    concurrency = args.concurrency or app.config["WORKER_CONCURRENCY"]
    if concurrency < 1:
        parser.error("--concurrency must be at least 1")
    queue_names = [q.strip() for q in args.queues.split(",")] if args.queues else None
    helpers = None
    cron = None
    if pump is not None:
        pump.start()
    try:
        if wait_for_redis(app, burst=args.burst):  # RQ's workers talk to Redis from the start
            worker = build_worker(app, queue_names, name=args.name)
            helpers = HelperThreads(app, worker, concurrency, queue_names, args.burst)
            helpers.start()
            if not args.burst and not args.no_cron:
                cron = CronThread(app)
                cron.start()
            worker.work(
                burst=args.burst,
                with_scheduler=False,
                logging_level=str(app.config.get("LOG_LEVEL", "INFO")).upper(),
            )
    finally:
        if pump is not None:
            if args.burst:
                pump.join()  # a burst pump ends by itself once nothing is due
            pump.stop(timeout=_warm_stop_timeout(app))
        if helpers is not None:
            helpers.stop(timeout=_warm_stop_timeout(app))
        if cron and cron.is_alive():
            cron.stop()
            cron.join(timeout=5)
    return 0
