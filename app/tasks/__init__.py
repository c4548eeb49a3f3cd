"""Background jobs (RQ). Jobs take ids, not objects, are idempotent, and live in tasks/<domain>.py.

They are the periodic jobs of `schedule.py` (reconciliation, housekeeping), enqueued by the
worker's cron scheduler on the queues named here. Notifications are not jobs: the worker's pump
delivers them from the outbox (app/notifications/pump.py).
"""

from __future__ import annotations

import logging

from flask import Flask, current_app
from rq import Queue

from app.extensions import get_redis

log = logging.getLogger(__name__)

# Notifications have no queue: the outbox is theirs, drained by the worker's pump.
QUEUE_NAMES = ("recon", "default")


def queue_name(name: str, app: Flask | None = None) -> str:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return f"{app.config['RQ_QUEUE_PREFIX']}-{name}"


def get_queue(name: str = "default", app: Flask | None = None) -> Queue:
    return Queue(queue_name(name, app), connection=get_redis(app))
