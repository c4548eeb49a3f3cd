"""The periodic jobs the worker's cron scheduler enqueues (RQ's own `rq.cron`).

Every periodic job must be safe to run twice at once (several workers, a slow run):
reconciliation takes its own lock, the retention purge its own (and deletes only what is
expired), the subscription upkeep learns what is still unknown, the payment rollup takes its own and
replaces whole buckets.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask
from redis import Redis
from rq.cron import CronScheduler

from app.tasks import queue_name
from app.tasks.maintenance import PURGE_BUDGET_SECONDS, purge_old_records
from app.tasks.payments import learn_payment_methods
from app.tasks.recon import run_scheduled_reconciliation
from app.tasks.reporting import ROLLUP_TIMEOUT_SECONDS, refresh_payment_rollup
from app.tasks.subscriptions import learn_renewal_payment_intents

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    func: Callable[[], object]  # a job of app/tasks/, run in the app context RQ's workers give
    queue: str  # one of app.tasks.QUEUE_NAMES
    interval_setting: str  # config key holding the interval in seconds
    timeout: int  # seconds before RQ kills a run

    @property
    def path(self) -> str:
        """The job's dotted name: how RQ finds it when it runs, and its name in the cron."""
        return f"{self.func.__module__}.{self.func.__qualname__}"


PERIODIC_JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob(
        run_scheduled_reconciliation,
        "recon",
        "RECON_INTERVAL_SECONDS",
        timeout=1800,
    ),
    PeriodicJob(
        learn_renewal_payment_intents,
        "default",
        "SUBSCRIPTION_UPKEEP_INTERVAL_SECONDS",
        timeout=600,
    ),
    PeriodicJob(
        learn_payment_methods,
        "default",
        "PAYMENT_METHOD_LOOKUP_INTERVAL_SECONDS",
        timeout=600,
    ),
    PeriodicJob(
        refresh_payment_rollup,
        "default",
        "ROLLUP_INTERVAL_SECONDS",
        timeout=ROLLUP_TIMEOUT_SECONDS,
    ),
    PeriodicJob(
        purge_old_records,
        "default",
        "RETENTION_INTERVAL_SECONDS",
        timeout=PURGE_BUDGET_SECONDS + 300,
    ),
)


def build_cron(app: Flask, connection: Redis) -> CronScheduler:
    """An RQ CronScheduler with every PERIODIC_JOBS entry at its configured interval."""
    cron = CronScheduler(connection=connection, name=f"paybridge-cron-{_short_id()}")
    for job in PERIODIC_JOBS:
        interval = int(app.config[job.interval_setting])
        if interval <= 0:
            log.info("periodic job %s is off (%s=%s)", job.path, job.interval_setting, interval)
            continue
        cron.register(
            job.func,
            queue_name(job.queue, app),
            interval=interval,
            job_timeout=job.timeout,
            name=job.path,
        )
    return cron


def _short_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
