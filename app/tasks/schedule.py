"""The periodic jobs the worker's cron scheduler enqueues (RQ's own `rq.cron`).

Jobs are named by dotted path and imported only when they run, so the worker starts even if
one of them is not there yet; that job then fails visibly in RQ's failed registry instead.
Every periodic job must be safe to run twice at once (several workers, a slow run):
reconciliation takes its own lock, the purge deletes what is expired, the subscription upkeep
learns what is still unknown.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
from dataclasses import dataclass

from flask import Flask
from redis import Redis
from rq.cron import CronScheduler

from app.tasks import queue_name

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
        "app.tasks.subscriptions.learn_renewal_payment_intents",
        "default",
        "SUBSCRIPTION_UPKEEP_INTERVAL_SECONDS",
        timeout=600,
    ),
    PeriodicJob(
        "app.tasks.maintenance.purge_idempotency_records",
        "default",
        "IDEMPOTENCY_PURGE_INTERVAL_SECONDS",
        timeout=600,
    ),
)


def run_periodic(path: str):
    """The job RQ runs for a periodic entry: import `path` now and call it (in the app context
    the worker's RQ workers give every job)."""
    module_name, _, func_name = path.rpartition(".")
    func = getattr(importlib.import_module(module_name), func_name)
    return func()


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
    return f"{socket.gethostname()}:{os.getpid()}"
