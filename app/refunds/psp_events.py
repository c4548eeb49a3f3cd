"""The PSP's refund events, handled inside the event intake's transaction (one commit).

Stripe reports a refund as `refund.created` / `refund.updated` / `refund.failed` /
`charge.refund.updated` (the refund object), and `charge.refunded` (the charge). Since API
2022-11-15 the charge no longer lists its refunds, only their total (`amount_refunded`); a charge
that still lists them (an older version, or expanded) has each applied like a refund event.

Each reported refund is mapped by its PSP id — or, when PayBridge never learned that id (the
PSP's answer was lost), by the `paybridge_refund_id` PayBridge put in its metadata — and moved
with `apply_psp_refund` under the payment's and the refund's row locks. A refund PayBridge never
made (e.g. in the PSP's own dashboard) is recorded on the payment its payment intent names, once:
its PSP id is unique, and a second report of it finds the first under the payment's lock. A
charge total larger than the refunds PayBridge knows sends PayBridge, once the event is stored,
to list the payment intent's refunds at the PSP, so a refund whose own event is late or lost is
recorded now (reconciliation also reads the refund events it missed).
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from app.common.locks import retry_lock_conflicts
from app.extensions import db
from app.models import Payment, PspEvent, Refund, RefundStatus, StatusSource, utcnow
from app.models.refund import RESERVING_STATUSES
from app.payments.state import lock_payment
from app.psp import PspError, get_provider
from app.psp.base import PspChargeRefunds, PspEventData, PspRefund
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
# The event named a refund of no payment PayBridge knows (its payment intent is not one of
# PayBridge's payments, or not learned yet).
OUTCOME_UNKNOWN_REFUND = "unknown_refund"
# A refund made at the PSP, not through PayBridge: who asked for it (Refund.source).
SOURCE_PSP = "psp"


def handle_refund_event(event: PspEventData, source: StatusSource) -> Handled:
    """Apply every refund the event reports; the event's outcome is the most telling one."""
    if not event.refunds:
        if event.charge is not None:
            return _check_charge_total(event, event.charge, source)
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


def _payment_of_intent(payment_intent_id: str | None) -> int | None:
    if not payment_intent_id:
        return None
    return db.session.scalar(
        select(Payment.id)
        .where(Payment.psp_payment_intent_id == payment_intent_id)
        .order_by(Payment.id)
        .limit(1)
    )


def _find_refund_id(psp_refund: PspRefund, *, locking: bool = False) -> int | None:
    """Our refund for this PSP refund: by its PSP id, else by the id PayBridge put in its
    metadata. `locking`: a locking read, which sees a row another transaction committed after
    this one began (a plain read may not, under REPEATABLE READ)."""
    by_psp_id = select(Refund.id).where(Refund.psp_refund_id == psp_refund.id)
    found = db.session.scalar(by_psp_id.with_for_update() if locking else by_psp_id)
    if found is not None:
        return found
    claimed = psp_refund.metadata.get("paybridge_refund_id")
    if claimed:
        return db.session.scalar(select(Refund.id).where(Refund.public_id == claimed))
    return None


def apply_reported_refund(
    psp_refund: PspRefund, *, via: str, event: PspEventData | None = None
) -> tuple[str, str | None, int | None]:
    """Apply one PSP refund to its record, recording it first when PayBridge never made it
    (locks, flushes, never commits); `event`: the event that reported it, which must be of
    the payment's mode (None: listed at the PSP with the payment's own mode's key).

    Returns (outcome, detail, payment_id).
    """
    # Plain reads (no gap locks); the row locks are taken payment first, then refund.
    refund_id = _find_refund_id(psp_refund)
    if refund_id is not None:
        payment_id = db.session.scalar(select(Refund.payment_id).where(Refund.id == refund_id))
        return _apply_known(lock_payment(payment_id), refund_id, psp_refund, via=via, event=event)
    payment_id = _payment_of_intent(psp_refund.payment_intent_id)
    if payment_id is None:
        detail = (
            f"no refund has PSP id {psp_refund.id}, and no payment has its payment intent "
            f"{psp_refund.payment_intent_id}"
        )
        return OUTCOME_UNKNOWN_REFUND, detail, None
    payment = lock_payment(payment_id)
    # Another report of the same refund may have recorded it meanwhile (it held this lock).
    refund_id = _find_refund_id(psp_refund, locking=True)
    if refund_id is not None:
        return _apply_known(payment, refund_id, psp_refund, via=via, event=event)
    wrong_mode = event and mode_mismatch(event, payment.livemode, f"payment {payment.public_id}")
    if wrong_mode:
        return PspEvent.OUTCOME_MODE_MISMATCH, wrong_mode, payment.id
    return _record_outside_refund(payment, psp_refund, via=via)


def _apply_known(
    payment: Payment,
    refund_id: int,
    psp_refund: PspRefund,
    *,
    via: str,
    event: PspEventData | None,
) -> tuple[str, str | None, int | None]:
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


def _record_outside_refund(
    payment: Payment, psp_refund: PspRefund, *, via: str
) -> tuple[str, str | None, int | None]:
    """A refund made at the PSP directly (its dashboard, another tool): the money left, so the
    payment records it like its own, and its client is told when it succeeds or fails."""
    if psp_refund.currency and psp_refund.currency.upper() != payment.currency.upper():
        detail = (
            f"PSP refund {psp_refund.id} is in {psp_refund.currency}, "
            f"payment {payment.public_id} in {payment.currency}"
        )
        log.warning("refund made at the PSP disagrees with its payment: %s", detail)
        return PspEvent.OUTCOME_MISMATCH, detail, payment.id
    now = utcnow()
    refund = Refund(
        payment_id=payment.id,
        merchant_id=payment.merchant_id,
        livemode=payment.livemode,
        amount=psp_refund.amount,
        currency=payment.currency,
        status=RefundStatus.PENDING.value,
        reason=psp_refund.reason[:30] if psp_refund.reason else None,
        source=SOURCE_PSP,
        psp=payment.psp,
        psp_refund_id=psp_refund.id,
        created_at=psp_refund.created_at or now,
        updated_at=now,
    )
    db.session.add(refund)
    db.session.flush()
    change = apply_psp_refund(payment, refund, psp_refund, via=via)
    log.info(
        "refund %s of %s %s made at the PSP (%s) recorded on payment %s: %s",
        refund.public_id,
        refund.amount,
        refund.currency,
        psp_refund.id,
        payment.public_id,
        refund.status,
    )
    return (
        PspEvent.OUTCOME_APPLIED,
        f"{refund.public_id}: made at the PSP as {psp_refund.id}, {change or refund.status}",
        payment.id,
    )


def _check_charge_total(
    event: PspEventData, charge: PspChargeRefunds, source: StatusSource
) -> Handled:
    """A charge's refund total without its refunds: compared with what PayBridge's refunds of
    the payment reserve (pending ones included: one may be at the PSP before PayBridge has
    recorded its answer). When the PSP counts more, a refund was made that PayBridge does not
    have: the payment intent's refunds are listed once the event is stored (outside its
    transaction: no lock is held across a PSP call)."""
    payment_id = _payment_of_intent(charge.payment_intent_id)
    if payment_id is None:
        detail = f"no payment has charge {charge.charge_id}'s intent {charge.payment_intent_id}"
        return Handled(OUTCOME_UNKNOWN_REFUND, detail)
    payment = db.session.get(Payment, payment_id)  # read only: nothing of it changes here
    assert payment is not None  # payments are never deleted
    wrong_mode = mode_mismatch(event, payment.livemode, f"payment {payment.public_id}")
    if wrong_mode:
        return Handled(PspEvent.OUTCOME_MODE_MISMATCH, wrong_mode, payment_id)
    known = (
        db.session.scalar(
            select(func.coalesce(func.sum(Refund.amount), 0)).where(
                Refund.payment_id == payment_id, Refund.status.in_(RESERVING_STATUSES)
            )
        )
        or 0
    )
    if charge.amount_refunded <= known:
        detail = f"the PSP's {charge.amount_refunded} refunded are known on {payment.public_id}"
        return Handled(PspEvent.OUTCOME_IGNORED, detail, payment_id)
    psp, livemode, intent = payment.psp, payment.livemode, charge.payment_intent_id
    assert intent is not None  # the payment was found by it

    def learn_them() -> None:
        learn_intent_refunds(psp, livemode, intent, via=source.value)

    detail = (
        f"the PSP counts {charge.amount_refunded} refunded, PayBridge knows {known} on "
        f"{payment.public_id}: its refunds are listed at the PSP"
    )
    return Handled(
        PspEvent.OUTCOME_APPLIED,
        detail,
        payment_id,
        after_commit=learn_them,
    )


def learn_intent_refunds(psp: str, livemode: bool, payment_intent_id: str, *, via: str) -> int:
    """Apply every refund the PSP holds for a payment intent (asked in its payment's mode),
    each in its own transaction;
    returns how many changed something. A PSP that cannot be asked now is logged: the refund
    events (and reconciliation, which reads those it missed) bring them later."""
    try:
        listed = list(get_provider(psp, livemode=livemode).list_refunds(payment_intent_id))
    except PspError as exc:
        log.warning("refunds of %s not listed at the PSP: %s", payment_intent_id, exc)
        return 0
    changed = 0
    for psp_refund in reversed(listed):  # oldest first, as they were made

        def apply(psp_refund=psp_refund) -> str:
            outcome, _, _ = apply_reported_refund(psp_refund, via=via)
            db.session.commit()
            return outcome

        if retry_lock_conflicts(apply, what=f"psp refund {psp_refund.id}") == "applied":
            changed += 1
    return changed
