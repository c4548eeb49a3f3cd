"""Background jobs (RQ). Jobs take ids, not objects, are idempotent, and live in tasks/<domain>.py.

Everything is enqueued through `enqueue`, the one place that sets queue, timeout and failure TTL.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from flask import Flask, current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry

log = logging.getLogger(__name__)

# Notifications have no queue: the outbox is theirs, drained by the worker's pump.
QUEUE_NAMES = ("recon", "default")
JOB_TIMEOUT_SECONDS = 300
FAILURE_TTL_SECONDS = 7 * 24 * 3600


def get_redis(app: Flask | None = None) -> Redis:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    if "paybridge_redis" not in app.extensions:
        app.extensions["paybridge_redis"] = Redis.from_url(
            app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5
        )
    return app.extensions["paybridge_redis"]


def queue_name(name: str, app: Flask | None = None) -> str:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return f"{app.config['RQ_QUEUE_PREFIX']}-{name}"


def get_queue(name: str = "default", app: Flask | None = None) -> Queue:
    return Queue(queue_name(name, app), connection=get_redis(app))


def enqueue(
    func,
    *args,
    queue: str = "default",
    job_id: str | None = None,
    delay_seconds: float | None = None,
    retry: Retry | None = None,
    timeout: int = JOB_TIMEOUT_SECONDS,
    result_ttl: int | None = None,
):
    """Put a job on a queue; without Redis, run it in a thread when the demo fallback is on.

    Raises RedisError when Redis is down and there is no fallback: a caller may ignore it only
    when something else finishes the work later (reconciliation, for the subscription jobs).
    """
    options = dict(job_id=job_id, job_timeout=timeout, failure_ttl=FAILURE_TTL_SECONDS, retry=retry)
    if result_ttl is not None:  # 0: the job is deleted once it succeeds, nothing is stored
        options["result_ttl"] = result_ttl
    try:
        q = get_queue(queue)
        if delay_seconds:
            return q.enqueue_in(timedelta(seconds=delay_seconds), func, *args, **options)
        return q.enqueue(func, *args, **options)
    except RedisError:
        if not current_app.config.get("RQ_INLINE_FALLBACK"):
            raise
        log.warning("Redis unreachable: running %s in-process", getattr(func, "__name__", func))
        _run_in_thread(current_app._get_current_object(), func, args, delay_seconds or 0)
        return None


def _run_in_thread(app: Flask, func, args, delay: float) -> None:
    def run() -> None:
        import time

        time.sleep(delay)
        with app.app_context():
            try:
                func(*args)
            except Exception:
                log.exception("in-process job %s failed", getattr(func, "__name__", func))

    threading.Thread(target=run, daemon=True).start()
