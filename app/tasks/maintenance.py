"""Housekeeping jobs (app/tasks/schedule.py runs them periodically)."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app

from app.common import idempotency
from app.extensions import db
from app.models import utcnow

log = logging.getLogger(__name__)


def purge_idempotency_records() -> int:
    """Forget completed Idempotency-Keys older than IDEMPOTENCY_RETENTION_HOURS.

    Like Stripe, keys are honoured for a limited time; a later retry with a pruned key is a new
    request, which merchant_reference's uniqueness still refuses as a duplicate payment.
    """
    hours = current_app.config["IDEMPOTENCY_RETENTION_HOURS"]
    removed = idempotency.purge_older_than(utcnow() - timedelta(hours=hours))
    db.session.commit()
    log.info("purged %d idempotency records older than %d h", removed, hours)
    return removed
