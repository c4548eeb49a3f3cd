"""Subscription upkeep (app/tasks/schedule.py runs it periodically)."""

from __future__ import annotations

import logging

from app.psp.base import PspError
from app.subscriptions.service import learn_payment_intent, paid_renewals_without_intent

log = logging.getLogger(__name__)

BATCH = 100


def learn_renewal_payment_intents() -> int:
    """Learn the payment intent of paid renewals that lack it (invoice events do not carry it;
    refunding that charge needs it, though a refund also asks for it itself). Idempotent; a
    PSP error leaves the renewal for the next run. Returns how many it learned."""
    learned = 0
    for payment_id in paid_renewals_without_intent(BATCH):
        try:
            learned += bool(learn_payment_intent(payment_id))
        except PspError as exc:
            log.warning("payment %s: payment intent not learned yet (%s)", payment_id, exc)
    if learned:
        log.info("learned the payment intent of %d renewal(s)", learned)
    return learned
