"""The worker needs only the database to deliver notifications: with Redis unreachable it starts,
delivers, and says so once (then once a minute), not once per retry of each of its threads;
when Redis answers again its RQ side (the periodic jobs) starts, and a later outage is again
one line while delivery goes on."""

from __future__ import annotations

import logging
import signal
import time
from urllib.parse import urlsplit

from rq import Worker

from app.extensions import get_redis
from app.models import PaymentStatus
from app.runtime.worker import REDIS_OUTAGE_LOG_SECONDS, RedisOutageLog
from tests.support import factories
from tests.support.tcp_proxy import tcp_proxy
from tests.support.waiting import wait_until
from tests.support.worker_process import WorkerProcess

OUTAGE_WORDS = ("Redis unreachable", "Redis still unreachable", "could not connect to Redis")
# The worker's own lines and RQ's, which repeat for as long as the outage lasts. A job that was
# running when Redis went (a reconciliation run) may say once that it goes on without it: those
# are bounded by the jobs in hand, not by time.
WORKER_LOGGERS = (" paybridge.worker: ", " rq.worker: ", " rq.cron: ")


def outage_lines(text: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if any(w in line for w in OUTAGE_WORDS) and any(name in line for name in WORKER_LOGGERS)
    ]


def test_the_worker_delivers_without_redis_logs_the_outage_once_and_resumes_rq(
    app, redis_url, make_merchant, receiver
):
    merchant, _ = make_merchant("Shop", receiver.url)
    redis = urlsplit(redis_url)
    with tcp_proxy(redis.hostname, redis.port) as proxy:
        proxy.cut()  # Redis unreachable from the worker's first breath
        worker = WorkerProcess(
            REDIS_URL=proxy.url("redis://127.0.0.1:{port}" + redis.path),
            RECON_INTERVAL_SECONDS="1",
        )
        try:
            # Down from the start: the pump delivers a payment's final notification.
            factories.make_payment(app, merchant.id, PaymentStatus.SUCCESS)
            wait_until(
                lambda: len(receiver.requests) == 1,
                what="the notification delivered without Redis",
                timeout=30,
                details=lambda: worker.output,
            )
            assert len(outage_lines(worker.output)) == 1, worker.output

            # Redis answers: RQ's workers and the cron scheduler start.
            proxy.restore()
            wait_until(
                lambda: (
                    Worker.count(connection=get_redis(app)) >= 1
                    and "Redis answers again" in worker.output
                ),
                what="the worker's RQ side registered in Redis",
                timeout=30,
                details=lambda: worker.output,
            )

            # Down again mid-run: every RQ thread retries, delivery goes on, one line is said.
            seen = len(worker.lines)
            tried_before = proxy.refused
            cut_at = time.monotonic()
            proxy.cut()
            factories.make_payment(app, merchant.id, PaymentStatus.FAILED)
            wait_until(
                lambda: len(receiver.requests) == 2 and proxy.refused - tried_before >= 12,
                what="a delivery during the outage, and the worker retrying Redis a dozen times",
                timeout=60,
                details=lambda: f"refused {proxy.refused - tried_before}\n{worker.output}",
            )
            during = "".join(worker.lines[seen:])
            # One line when it begins, and a reminder only for each whole minute it has lasted
            # (a loaded machine may take that long to see a dozen retries).
            reminders = int((time.monotonic() - cut_at) // REDIS_OUTAGE_LOG_SECONDS)
            assert 1 <= len(outage_lines(during)) <= 1 + reminders, during

            proxy.restore()
            worker.proc.send_signal(signal.SIGTERM)
            assert worker.wait(60) == 0, worker.output
        finally:
            worker.kill()
    assert [r.json()["type"] for r in receiver.requests] == ["payment.succeeded", "payment.failed"]


def test_the_outage_is_said_when_it_begins_once_a_minute_and_when_it_ends(caplog):
    """RedisOutageLog on its own, with a clock the test moves."""
    now = [1000.0]
    outage = RedisOutageLog(interval=60, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="paybridge.worker")

    for _ in range(50):  # many threads, many retries within the first minute
        outage.down(ConnectionError("refused"))
        now[0] += 1
    now[0] = 1000.0 + 61
    outage.down(ConnectionError("refused"))
    outage.down(ConnectionError("refused"))
    outage.up()
    outage.up()
    outage.down(ConnectionError("refused again"))

    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 4, said
    assert said[0].startswith("Redis unreachable (refused)")
    assert said[1].startswith("Redis still unreachable after 61 s")
    assert said[2] == "Redis answers again after 61 s: the periodic jobs resume"
    assert said[3].startswith("Redis unreachable (refused again)")


def test_rq_own_retry_lines_are_taken_over(caplog):
    outage = RedisOutageLog(interval=60, clock=lambda: 0.0)
    caplog.set_level(logging.INFO, logger="paybridge.worker")
    line = "Worker %s: could not connect to Redis instance: %s retrying in %d seconds..."
    kept = [
        outage.filter(logging.LogRecord("rq.worker", logging.ERROR, "", 0, line, args, None))
        for args in (("w1", "Error 111", 1), ("w2", "Error 111", 2))
    ]
    other = logging.LogRecord("rq.worker", logging.INFO, "", 0, "Worker %s: started", ("w1",), None)
    assert kept == [False, False]
    assert outage.filter(other) is True
    assert [r.getMessage()[:27] for r in caplog.records] == ["Redis unreachable (Error 11"]
