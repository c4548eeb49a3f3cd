"""worker.py as the Procfile runs it: real processes, the notification pump, cron, graceful
shutdown."""

from __future__ import annotations

import signal
import time

from app.extensions import db, get_redis
from app.models import Notification, NotificationAttempt
from app.tasks import get_queue
from app.tasks.maintenance import purge_old_records
from app.tasks.schedule import PERIODIC_JOBS, build_cron
from tests.support.rows import get_row, get_rows
from tests.support.waiting import wait_until
from tests.support.worker_process import WorkerProcess


def wait_delivered(app, worker: WorkerProcess, notification_id: int, what: str) -> None:
    """Until the worker process delivered the notification (its output shown if it never does)."""
    wait_until(
        lambda: db.session.get(Notification, notification_id).status == "delivered",
        what=what,
        timeout=30,
        interval=0.1,
        app=app,
        details=lambda: worker.output,
    )


def test_cron_registers_reconciliation_and_the_purge(app):
    with app.app_context():
        cron = build_cron(app, get_redis())
    jobs = {job.name: job for job in cron.get_jobs()}
    assert set(jobs) == {job.path for job in PERIODIC_JOBS}
    purge = jobs["app.tasks.maintenance.purge_old_records"]
    assert purge.interval == app.config["RETENTION_INTERVAL_SECONDS"]
    assert purge.queue_name.endswith("-default")
    recon = jobs["app.tasks.recon.run_scheduled_reconciliation"]
    assert recon.interval == app.config["RECON_INTERVAL_SECONDS"]
    assert recon.queue_name.endswith("-recon")


def wait_for_output(worker: WorkerProcess, text: str, timeout: float = 30) -> None:
    """Until the worker printed `text`; failing at once should it exit first."""
    wait_until(
        lambda: text in worker.output or worker.proc.poll() is not None,
        what=f"the worker to print {text!r}",
        timeout=timeout,
        details=lambda: worker.output,
    )
    assert text in worker.output, f"worker exited without printing {text!r}:\n{worker.output}"


def test_burst_worker_runs_what_is_due_and_queued_and_exits(
    app, make_merchant, receiver, finish_payment
):
    merchant, _ = make_merchant(notify_url=receiver.url)
    _, notification_id = finish_payment(merchant.id)
    with app.app_context():
        get_queue().enqueue(purge_old_records)  # an RQ job beside the notification
    worker = WorkerProcess("--burst")
    try:
        assert worker.wait(60) == 0, worker.output
    finally:
        worker.kill()
    assert get_row(app, Notification, notification_id).status == "delivered"
    assert len(receiver.requests) == 1
    # The delivery's own line says what it did; RQ's routine per-job lines are left out.
    assert "app.notifications.delivery: notification msg_" in worker.output
    with app.app_context():
        assert len(get_queue("default")) == 0  # the RQ job ran too
    assert "Successfully completed" not in worker.output
    assert "Job OK" not in worker.output
    assert "done, quitting" in worker.output  # RQ's other lines still show


def test_idle_heartbeats_are_thinned_out_but_a_jobs_own_go_through(app):
    from app.runtime.worker import build_worker

    rq_worker = build_worker(app, ["default"])
    redis = get_redis(app)

    def last_heartbeat() -> bytes | None:
        return redis.hget(rq_worker.key, "last_heartbeat")

    rq_worker.heartbeat()
    first = last_heartbeat()
    assert first is not None and redis.ttl(rq_worker.key) > 0
    time.sleep(0.01)
    rq_worker.heartbeat()  # between two jobs, moments later: no Redis call
    assert last_heartbeat() == first
    with redis.pipeline() as pipeline:  # as RQ sends it when a job starts or ends
        rq_worker.heartbeat(pipeline=pipeline)
        pipeline.execute()
    assert last_heartbeat() != first
    redis.delete(rq_worker.key)


def test_two_worker_processes_send_each_notification_once(
    app, make_merchant, receiver, finish_payment
):
    receiver.delay = 1.0  # both pumps look for due rows while the first POST is in flight
    # The POST's timeout far above the receiver's delay (the testing default, 2 s, is not on a
    # busy machine): a timed-out attempt would be retried, a second POST of the same one.
    workers = [
        WorkerProcess("--no-cron", NOTIFY_POLL_SECONDS="0.05", NOTIFY_TIMEOUT_SECONDS="10")
        for _ in range(2)
    ]
    try:
        for w in workers:
            wait_for_output(w, "notification pump started")
        merchant, _ = make_merchant(notify_url=receiver.url)
        ids = [finish_payment(merchant.id)[1] for _ in range(4)]
        wait_until(
            lambda: all(db.session.get(Notification, i).status == "delivered" for i in ids),
            what="four deliveries",
            timeout=20,
            interval=0.1,
            app=app,
            details=lambda: "".join(w.output for w in workers),
        )
        for w in workers:
            w.proc.send_signal(signal.SIGTERM)
        assert [w.wait(20) for w in workers] == [0, 0]
    finally:
        for w in workers:
            w.kill()
    assert receiver.hits == 4
    for notification_id in ids:
        assert len(get_rows(app, NotificationAttempt, notification_id=notification_id)) == 1
        assert get_row(app, Notification, notification_id).attempt_count == 1


def test_written_while_redis_was_down_it_is_delivered_and_sigterm_finishes_the_post(
    app, make_merchant, receiver, finish_payment
):
    merchant, _ = make_merchant(notify_url=receiver.url)
    # Written while Redis was unreachable: the outbox row is all the pump needs.
    saved = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    app.extensions.pop("paybridge_redis", None)
    try:
        _, written = finish_payment(merchant.id)
    finally:
        app.config["REDIS_URL"] = saved
        app.extensions.pop("paybridge_redis", None)

    worker = WorkerProcess(RECON_INTERVAL_SECONDS="0", NOTIFY_TIMEOUT_SECONDS="10")
    try:
        wait_delivered(app, worker, written, "the pump's delivery")
        receiver.delay = 1.0  # well under the 10 s timeout: the request succeeds
        _, in_flight = finish_payment(merchant.id)
        hits = receiver.hits
        wait_until(
            lambda: receiver.hits != hits,
            what="the POST in flight",
            timeout=15,
            details=lambda: worker.output,
        )
        assert receiver.hits == hits + 1, worker.output
        worker.proc.send_signal(signal.SIGTERM)  # mid-request: warm shutdown
        assert worker.wait(20) == 0, worker.output
    finally:
        worker.kill()
    assert get_row(app, Notification, in_flight).status == "delivered", worker.output
    assert "warm shut down requested" in worker.output
    assert "notification pump stopped" in worker.output


def test_one_process_delivers_concurrently_and_finishes_every_delivery_on_sigterm(
    app, make_merchant, receiver, finish_payment
):
    receiver.delay = 1.5  # a slow client app: one POST at a time would send one every 1.5 s
    # The POST's timeout far above the receiver's delay (the testing default, 2 s, leaves half a
    # second, not enough on a busy machine): each of the four must succeed.
    worker = WorkerProcess("--no-cron", NOTIFY_CONCURRENCY="4", NOTIFY_TIMEOUT_SECONDS="10")
    try:
        wait_for_output(worker, "notification pump started: 4 deliveries at once")
        merchant, _ = make_merchant(notify_url=receiver.url)
        notification_ids = [finish_payment(merchant.id)[1] for _ in range(4)]
        wait_until(
            lambda: receiver.hits >= 4,
            what="four POSTs in flight",
            timeout=15,
            details=lambda: worker.output,
        )
        assert receiver.hits == 4, worker.output
        worker.proc.send_signal(signal.SIGTERM)  # all four mid-request: each must finish
        assert worker.wait(30) == 0, worker.output
    finally:
        worker.kill()
    assert receiver.max_in_flight == 4
    assert [get_row(app, Notification, n).status for n in notification_ids] == ["delivered"] * 4
    assert len(receiver.requests) == 4
    assert "warm shut down requested" in worker.output


def test_without_redis_the_worker_starts_and_delivers_and_stops_warmly(
    app, make_merchant, receiver, finish_payment
):
    """Delivery needs only the database: with no Redis answering, the worker still starts, its
    pump delivers, it says the periodic jobs wait for Redis, and SIGTERM ends it cleanly."""
    merchant, _ = make_merchant(notify_url=receiver.url)
    saved = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    app.extensions.pop("paybridge_redis", None)
    try:
        _, waiting = finish_payment(merchant.id)  # written while Redis was unreachable
    finally:
        app.config["REDIS_URL"] = saved
        app.extensions.pop("paybridge_redis", None)

    worker = WorkerProcess(REDIS_URL="redis://127.0.0.1:1/0", RECON_INTERVAL_SECONDS="1")
    try:
        wait_delivered(app, worker, waiting, "the pump's delivery without Redis")
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, worker.output
    finally:
        worker.kill()
    assert len(receiver.requests) == 1
    assert "Redis unreachable" in worker.output
    assert "the periodic jobs start once it answers" in worker.output
