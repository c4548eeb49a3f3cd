"""What a Prometheus scrape answers, for web's /metrics and the worker's alike: the gauges read
at the moment it asks (queue depths from Redis; the outbox's backlog and the overdue payments
from the database), the text of every metric, and who may read it (METRICS_TOKEN).

A gauge that cannot be read (Redis or the database down) keeps its last value and the scrape
still answers: the counters are what an operator needs most during an outage.
"""

from __future__ import annotations

import hmac
import logging
from datetime import timedelta

from flask import Flask

from app.blueprints.api.auth import raw_key_from_header
from app.extensions import db
from app.metrics import NOTIFICATIONS_DUE, PAYMENTS_OVERDUE, QUEUE_DEPTH, render_latest
from app.models import utcnow
from app.notifications.delivery import count_due
from app.payments.queries import count_overdue
from app.tasks import QUEUE_NAMES, get_queue

log = logging.getLogger(__name__)

# An expired payment is overdue once reconciliation has had two runs to finish it (and at least
# this long, when runs are frequent or off).
OVERDUE_AFTER_AT_LEAST = timedelta(minutes=10)


def overdue_grace(config) -> timedelta:
    """How long past its checkout's expiry an unfinished payment may wait for reconciliation."""
    return max(OVERDUE_AFTER_AT_LEAST, 2 * timedelta(seconds=config["RECON_INTERVAL_SECONDS"]))


def refresh_gauges(app: Flask) -> None:
    """Read the scrape-time gauges; call inside an app context."""
    try:
        for name in QUEUE_NAMES:
            QUEUE_DEPTH.labels(name).set(len(get_queue(name, app)))
    except Exception:
        log.warning("queue depths unavailable: Redis unreachable")
    try:
        NOTIFICATIONS_DUE.set(count_due())
        lifetime = timedelta(seconds=app.config["CHECKOUT_SESSION_TTL_SECONDS"])
        overdue = count_overdue(utcnow(), overdue_grace(app.config), lifetime)
        for (status, livemode), count in overdue.items():
            PAYMENTS_OVERDUE.labels(status, "live" if livemode else "test").set(count)
    except Exception:
        db.session.rollback()
        log.warning("notification backlog and overdue payments unavailable: database unreachable")


def token_accepted(token: str | None, authorization: str | None) -> bool:
    """A scrape sends METRICS_TOKEN as `Authorization: Bearer` (or the Basic user name); no
    token set (the demo, the suite) lets every scrape in. Production requires one."""
    if not token:
        return True
    sent = raw_key_from_header(authorization) or ""
    return hmac.compare_digest(sent.encode(), token.encode())


def scrape(app: Flask) -> tuple[bytes, str]:
    """Fresh gauges, then the text exposition of every metric; call inside an app context."""
    refresh_gauges(app)
    return render_latest()
