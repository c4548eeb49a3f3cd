"""The PSP's dispute events (`charge.dispute.*`), handled inside the event intake's transaction.

Each event carries the whole dispute: the record is created by the first event PayBridge sees
of it (whichever type that is) and brought to the newest state after. The dispute names its
payment intent, which names the payment; one that names only its charge is matched by the
attempt recorded with that charge (payment_attempts.psp_charge_id), and when no attempt has it,
by the charge's payment intent, asked of the PSP once the event is stored (no transaction stays
open across a PSP call). An event of the other mode than the payment's is stored as `mode_mismatch`
and changes nothing; one of no known payment as `unknown_dispute`.
"""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select

from app.common.locks import retry_lock_conflicts
from app.disputes.service import (
    apply_psp_dispute,
    dispute_of_psp_id,
    payment_of_charge,
    payment_of_intent,
)
from app.extensions import db
from app.models import PspEvent, StatusSource
from app.payments.state import lock_payment
from app.psp import PspError, get_provider
from app.psp.base import PspDispute, PspEventData
from app.psp_events.intake import Handled, mode_mismatch

log = logging.getLogger(__name__)

DISPUTE_EVENT_TYPES = (
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)


def handle_dispute_event(event: PspEventData, source: StatusSource) -> Handled:
    """Record the dispute the event reports on its payment."""
    reported = event.dispute
    if reported is None:
        return Handled(PspEvent.OUTCOME_UNHANDLED, "the event reports no dispute")
    # Plain reads (no gap locks); the row locks are taken payment first, then dispute.
    known = dispute_of_psp_id(reported.id)
    payment_id = known.payment_id if known else payment_of_intent(reported.payment_intent_id)
    if payment_id is None and reported.payment_intent_id is None:
        payment_id = payment_of_charge(reported.charge_id)
    if payment_id is not None:
        return _record(event, reported, payment_id)
    if reported.payment_intent_id is None and reported.charge_id:
        charge = reported.charge_id
        psp = current_app.config.get("PSP_NAME", "stripe")
        return Handled(
            PspEvent.OUTCOME_UNKNOWN_DISPUTE,
            f"dispute {reported.id} names no payment intent: its charge {charge}'s is asked",
            after_commit=lambda: _match_by_charge(psp, event, reported, charge),
        )
    detail = f"no payment has dispute {reported.id}'s payment intent {reported.payment_intent_id}"
    return Handled(PspEvent.OUTCOME_UNKNOWN_DISPUTE, detail)


def _record(event: PspEventData, reported: PspDispute, payment_id: int) -> Handled:
    """Apply the dispute to its payment (locked here), unless the event's mode or currency is
    not the payment's."""
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


def _match_by_charge(psp: str, event: PspEventData, reported: PspDispute, charge: str) -> None:
    """After the event is stored as `unknown_dispute`: ask the PSP (in the event's mode) for the
    charge's payment intent and, when it is a payment's, record the dispute on it and the new
    outcome on the stored event, in one transaction. A PSP that cannot answer now leaves the
    event unknown (logged); the dispute's next event tries again."""
    try:
        intent = get_provider(psp, livemode=event.livemode).charge_payment_intent(charge)
    except PspError as exc:
        log.warning("dispute %s: charge %s's payment intent not known: %s", reported.id, charge,
                    exc)  # fmt: skip
        return

    def apply() -> None:
        row = db.session.scalar(
            select(PspEvent)
            .where(PspEvent.psp == psp, PspEvent.event_id == event.id)
            .with_for_update()
        )
        if row is None or row.outcome != PspEvent.OUTCOME_UNKNOWN_DISPUTE:
            db.session.rollback()  # handled meanwhile (or not stored): nothing to do
            return
        payment_id = payment_of_intent(intent)
        if payment_id is None:
            handled = Handled(
                PspEvent.OUTCOME_UNKNOWN_DISPUTE,
                f"no payment has dispute {reported.id}'s charge {charge} (intent {intent})",
            )
        else:
            handled = _record(event, reported, payment_id)
        row.outcome, row.detail = handled.outcome, (handled.detail or "")[:500] or None
        row.payment_id = handled.payment_id
        db.session.commit()
        log.info("psp event %s matched by charge %s: %s", event.id, charge, handled.outcome)

    retry_lock_conflicts(apply, what=f"psp event {event.id} by charge")
