"""Payment upkeep (app/tasks/schedule.py runs it periodically)."""

from __future__ import annotations

import logging

from app.payments.attempts import learn_missing_charges

log = logging.getLogger(__name__)


def learn_payment_methods() -> int:
    """How the shopper paid, for the payments webhooks moved without the charge in hand
    (app/payments/attempts.py finds them). Idempotent; returns how many it recorded."""
    recorded = learn_missing_charges()
    if recorded:
        log.info("learned how %d payment(s) were paid", recorded)
    return recorded
