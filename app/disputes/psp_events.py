"""The PSP's dispute events (`charge.dispute.*`), handled inside the event intake's transaction.

Each event carries the whole dispute: the record is created by the first event PayBridge sees
of it (whichever type that is) and brought to the newest state after. The dispute names its
payment intent, which names the payment; an event of the other mode than the payment's is
stored as `mode_mismatch` and changes nothing.
"""

from __future__ import annotations

from app.disputes.service import apply_psp_dispute, dispute_of_psp_id, payment_of_intent
from app.models import PspEvent, StatusSource
from app.payments.state import lock_payment
from app.psp.base import PspEventData
from app.psp_events.intake import Handled, mode_mismatch

DISPUTE_EVENT_TYPES = (
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)
# The event named a dispute of no payment PayBridge knows.
OUTCOME_UNKNOWN_DISPUTE = "unknown_dispute"


def handle_dispute_event(event: PspEventData, source: StatusSource) -> Handled:
    """Record the dispute the event reports on its payment."""
    reported = event.dispute
    if reported is None:
        return Handled(PspEvent.OUTCOME_UNHANDLED, "the event reports no dispute")
    # Plain reads (no gap locks); the row locks are taken payment first, then dispute.
    known = dispute_of_psp_id(reported.id)
    payment_id = known.payment_id if known else payment_of_intent(reported.payment_intent_id)
    if payment_id is None:
        detail = (
            f"no payment has dispute {reported.id}'s payment intent {reported.payment_intent_id}"
        )
        return Handled(OUTCOME_UNKNOWN_DISPUTE, detail)
    payment = lock_payment(payment_id)
    wrong_mode = mode_mismatch(event, payment.livemode, f"payment {payment.public_id}")
    if wrong_mode:
        return Handled(PspEvent.OUTCOME_MODE_MISMATCH, wrong_mode, payment.id)
    if reported.currency and reported.currency != payment.currency.upper():
        detail = (
            f"dispute {reported.id} is in {reported.currency}, "
            f"payment {payment.public_id} in {payment.currency}"
        )
        return Handled(PspEvent.OUTCOME_MISMATCH, detail, payment.id)
    # A locking read: another event of the same dispute may have recorded it meanwhile.
    dispute = dispute_of_psp_id(reported.id, locking=True)
    dispute, change = apply_psp_dispute(
        payment, dispute, reported, at=event.created_at, funds=event.type
    )
    if change is None:
        detail = f"{dispute.public_id} already {dispute.status}"
        return Handled(PspEvent.OUTCOME_IGNORED, detail, payment.id)
    return Handled(PspEvent.OUTCOME_APPLIED, f"{dispute.public_id}: {change}", payment.id)
