"""The PSP's refund events, handled inside the event intake's transaction (one commit).

Stripe reports a refund as `refund.created` / `refund.updated` / `refund.failed` /
`charge.refund.updated` (the refund object) and `charge.refunded` (the charge, with its refunds
listed). Each reported refund is mapped by its PSP id — or, when PayBridge never learned that id
(the PSP's answer was lost), by the `paybridge_refund_id` PayBridge put in its metadata — and
moved with `apply_psp_refund` under the payment's and the refund's row locks.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from app.extensions import db
from app.models import PspEvent, Refund, StatusSource
from app.payments.state import lock_payment
from app.psp.base import PspEventData, PspRefund
from app.psp_events.intake import Handled, mode_mismatch
from app.refunds.service import apply_psp_refund, lock_refund, refund_mismatch

log = logging.getLogger(__name__)

REFUND_EVENT_TYPES = (
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.refund.updated",
    "charge.refunded",
)
# The event named a refund PayBridge never made (e.g. one made in the PSP's own dashboard).
OUTCOME_UNKNOWN_REFUND = "unknown_refund"


def handle_refund_event(event: PspEventData, source: StatusSource) -> Handled:
    """Apply every refund the event reports; the event's outcome is the most telling one."""
    if not event.refunds:
        return Handled(PspEvent.OUTCOME_UNHANDLED, "the event reports no refund")
    outcomes: list[str] = []
    details: list[str] = []
    first_payment_id = None
    for psp_refund in event.refunds:
        outcome, detail, payment_id = apply_reported_refund(
            psp_refund, via=source.value, event=event
        )
        outcomes.append(outcome)
        if detail:
            details.append(detail)
        first_payment_id = first_payment_id or payment_id
    for outcome in (
        PspEvent.OUTCOME_MODE_MISMATCH,
        PspEvent.OUTCOME_MISMATCH,
        PspEvent.OUTCOME_APPLIED,
        PspEvent.OUTCOME_IGNORED,
        OUTCOME_UNKNOWN_REFUND,
    ):
        if outcome in outcomes:
            return Handled(outcome, "; ".join(details)[:500] or None, first_payment_id)
    return Handled(PspEvent.OUTCOME_IGNORED, None, first_payment_id)


def _find_refund_id(psp_refund: PspRefund) -> int | None:
    # Plain reads (no gap locks); the row lock is taken after the payment's.
    found = db.session.scalar(select(Refund.id).where(Refund.psp_refund_id == psp_refund.id))
    if found is not None:
        return found
    claimed = psp_refund.metadata.get("paybridge_refund_id")
    if claimed:
        return db.session.scalar(select(Refund.id).where(Refund.public_id == claimed))
    return None


def apply_reported_refund(
    psp_refund: PspRefund, *, via: str, event: PspEventData | None = None
) -> tuple[str, str | None, int | None]:
    """Apply one PSP refund to its record (locks, flushes, never commits); `event`: the event
    that reported it, which must be of the refund's payment's mode.

    Returns (outcome, detail, payment_id).
    """
    refund_id = _find_refund_id(psp_refund)
    if refund_id is None:
        return OUTCOME_UNKNOWN_REFUND, f"no refund has PSP id {psp_refund.id}", None
    payment_id = db.session.scalar(select(Refund.payment_id).where(Refund.id == refund_id))
    payment = lock_payment(payment_id)
    refund = lock_refund(refund_id)
    wrong_mode = event and mode_mismatch(event, payment.livemode, f"refund {refund.public_id}")
    if wrong_mode:
        return PspEvent.OUTCOME_MODE_MISMATCH, wrong_mode, payment.id
    problem = refund_mismatch(refund, psp_refund)
    if problem:
        log.warning(
            "refund %s: PSP refund %s disagrees: %s", refund.public_id, psp_refund.id, problem
        )
        return PspEvent.OUTCOME_MISMATCH, f"{refund.public_id}: {problem}", payment.id
    if refund.psp_refund_id is None:
        refund.psp_refund_id = psp_refund.id  # the PSP's answer to our create was lost
    change = apply_psp_refund(payment, refund, psp_refund, via=via)
    if change is None:
        return (
            PspEvent.OUTCOME_IGNORED,
            f"{refund.public_id} already {refund.status} (PSP says {psp_refund.status})",
            payment.id,
        )
    return PspEvent.OUTCOME_APPLIED, f"{refund.public_id}: {change}", payment.id
