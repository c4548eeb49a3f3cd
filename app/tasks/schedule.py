"""The periodic jobs the worker's cron scheduler enqueues (RQ's own `rq.cron`).

Jobs are named by dotted path and imported only when they run, so the worker starts even if
one of them is not there yet; that job then fails visibly in RQ's failed registry instead.
Every periodic job must be safe to run twice at once (several workers, a slow run):
reconciliation takes its own lock, the purge deletes what is expired.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from dataclasses import dataclass

from flask import Flask
from redis import Redis
from rq.cron import CronScheduler

from app.tasks import queue_name
from app.tasks.context import job_app_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    path: str  # "package.module.function"
    queue: str  # one of app.tasks.QUEUE_NAMES
    interval_setting: str  # config key holding the interval in seconds
    timeout: int  # seconds before RQ kills a run


PERIODIC_JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob(
        "app.tasks.recon.run_scheduled_reconciliation",
        "recon",
        "RECON_INTERVAL_SECONDS",
        timeout=1800,
    ),
    PeriodicJob(
        "app.tasks.maintenance.purge_idempotency_records",
        "default",
        "IDEMPOTENCY_PURGE_INTERVAL_SECONDS",
        timeout=600,
    ),
)


def run_periodic(path: str):
    """The job RQ runs for a periodic entry: import `path` now and call it."""
    module_name, _, func_name = path.rpartition(".")
    func = getattr(importlib.import_module(module_name), func_name)
    with job_app_context():
        return func()


def run_in_process(app: Flask, stop: threading.Event) -> None:
    """Run every PERIODIC_JOBS entry at its interval in this process, until `stop` is set.

    For the demo without Redis (worker.py --without-redis): no queue, no cron scheduler, yet
    reconciliation still finishes payments (and the notification pump, which needs no Redis,
    runs beside it).
    """
    due = {
        job.path: time.monotonic()
        for job in PERIODIC_JOBS
        if int(app.config[job.interval_setting]) > 0
    }
    while not stop.is_set():
        for job in PERIODIC_JOBS:
            if job.path not in due or due[job.path] > time.monotonic():
                continue
            with app.app_context():
                try:
                    run_periodic(job.path)
                except Exception:
                    log.exception("periodic job %s failed; it runs again next interval", job.path)
            due[job.path] = time.monotonic() + int(app.config[job.interval_setting])
        stop.wait(max(0.2, min(due.values(), default=time.monotonic() + 5) - time.monotonic()))


def build_cron(app: Flask, connection: Redis) -> CronScheduler:
    """An RQ CronScheduler with every PERIODIC_JOBS entry at its configured interval."""
    cron = CronScheduler(connection=connection, name=f"paybridge-cron-{_short_id()}")
    for job in PERIODIC_JOBS:
        interval = int(app.config[job.interval_setting])
        if interval <= 0:
            log.info("periodic job %s is off (%s=%s)", job.path, job.interval_setting, interval)
            continue
        cron.register(
            run_periodic,
            queue_name(job.queue, app),
            args=(job.path,),
            interval=interval,
            job_timeout=job.timeout,
            name=job.path,
        )
    return cron


def _short_id() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"
