"""Attempts to pay, and how the shopper paid: recorded on the payment from what the PSP says.

Each charge comes in its own event as it is made or settles (`charge.succeeded`, `.pending`,
`.failed`, with the whole charge): Stripe usually sends it before the checkout event that moves
the payment, so the payment's `payment.succeeded` notification names how it was paid. A
declined try also comes in `payment_intent.payment_failed` (its `last_payment_error` names the
same charge). The try that paid is also the intent's latest charge, read from a retrieved
session (return page, reconciliation) or, when no charge event came before a webhook moved the
payment, with one retrieve of the intent by the worker's periodic job (`learn_missing_charges`):
the webhook path itself asks the PSP nothing.
A SEPA Direct Debit's charge names its mandate by id only: the same job retrieves the mandate's
reference (one more PSP call, with no lock held) once the method is known, whichever path
learned it.
However often and in whatever order the PSP tells an attempt, it is one row: known by its
charge id, or by the event that reported a decline with no charge. Rows are written under the
payment's row lock.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, exists, or_, select

from app.common.locks import retry_lock_conflicts, rollback_quietly
from app.extensions import db
from app.models import (
    Payment,
    PaymentAttempt,
    PaymentStatus,
    PspEvent,
    RollupWatermark,
    StatusSource,
    utcnow,
)
from app.models.attempt import OUTCOME_FAILED, OUTCOME_SUCCEEDED
from app.payments import failure_reasons, signals
from app.payments.state import learn_psp_ids, lock_payment, lock_payment_by_public_id
from app.psp.base import PaymentProvider, PspAttempt, PspError, PspEventData, PspMethod
from app.psp.factory import get_provider
from app.psp_events.intake import Handled, mode_mismatch

log = logging.getLogger(__name__)

# The payment intent and charge events the payment core handles (`app/wiring.py` registers
# them; `flask stripe setup` subscribes the endpoint to them).
PAYMENT_INTENT_EVENT_TYPES = ("payment_intent.payment_failed",)
CHARGE_EVENT_TYPES = ("charge.pending", "charge.succeeded", "charge.failed")

_ATTEMPT_BY_CHARGE = select(PaymentAttempt.id).where(
    PaymentAttempt.psp_charge_id == bindparam("charge_id")
)
_ATTEMPT_BY_EVENT = select(PaymentAttempt.id).where(
    PaymentAttempt.psp_event_id == bindparam("event_id")
)
_PAYMENT_BY_INTENT = select(Payment.id).where(
    Payment.psp_payment_intent_id == bindparam("intent_id")
)


def _has_attempt(payment_id: int, outcome: str) -> bool:
    return bool(
        db.session.scalar(
            select(
                exists().where(
                    PaymentAttempt.payment_id == payment_id, PaymentAttempt.outcome == outcome
                )
            )
        )
    )


def expiry_reason(payment: Payment) -> str:
    """Why a checkout that closed unpaid failed: the shopper's last act on the hosted page
    (left by its back link, or declined), else plain expiry (`failure_reasons.for_expiry`)."""
    last = db.session.execute(
        select(
            PaymentAttempt.attempted_at, PaymentAttempt.decline_code, PaymentAttempt.failure_code
        )
        .where(PaymentAttempt.payment_id == payment.id, PaymentAttempt.outcome == OUTCOME_FAILED)
        .order_by(PaymentAttempt.attempted_at.desc(), PaymentAttempt.id.desc())
        .limit(1)
    ).first()
    return failure_reasons.for_expiry(
        last_decline=last.attempted_at if last else None,
        shopper_canceled_at=payment.shopper_canceled_at,
        last_decline_code=(last.decline_code or last.failure_code) if last else None,
    )


# The reasons a closed checkout's payment may have, which a late-told attempt may correct.
_EXPIRY_REASONS = frozenset(
    {failure_reasons.EXPIRED, failure_reasons.DECLINED, failure_reasons.CANCELED_BY_SHOPPER}
)


def record_attempt(
    payment: Payment, attempt: PspAttempt, *, psp_event_id: str | None = None
) -> PaymentAttempt | None:
    """Add the attempt to the locked payment unless it is known already (by its charge, or by
    the event that reported it); the caller commits. A new declined one is announced
    (`signals.attempt_failed`), in this transaction. A pending one (a delayed method still
    processing) is no attempt yet: only its method is learned. Returns the new row, or None."""
    if attempt.outcome == OUTCOME_SUCCEEDED or attempt.outcome == "pending":
        learn_method(payment, attempt.method)
    if attempt.outcome not in (OUTCOME_FAILED, OUTCOME_SUCCEEDED):
        return None
    connection = db.session.connection()
    if attempt.charge_id:
        known = connection.execute(_ATTEMPT_BY_CHARGE, {"charge_id": attempt.charge_id})
        psp_event_id = None  # the charge names it: a later event for it is no other attempt
    elif psp_event_id:
        known = connection.execute(_ATTEMPT_BY_EVENT, {"event_id": psp_event_id})
    else:
        return None  # nothing to know it by again: the event that reports it will bring it
    if known.first() is not None:
        return None
    method = attempt.method or PspMethod(type=None)
    row = PaymentAttempt(
        payment_id=payment.id,
        attempted_at=attempt.attempted_at or payment.updated_at,
        outcome=attempt.outcome,
        method_type=method.type,
        card_brand=method.brand,
        card_last4=method.last4,
        decline_code=attempt.decline_code,
        failure_code=attempt.failure_code,
        failure_message=attempt.failure_message,
        psp_charge_id=attempt.charge_id,
        psp_event_id=psp_event_id,
    )
    db.session.add(row)
    db.session.flush()
    log.info(
        "payment %s: attempt %s (%s %s %s, %s)",
        payment.public_id,
        attempt.outcome,
        method.type,
        method.brand,
        method.last4,
        attempt.decline_code or attempt.failure_code or "-",
    )
    if row.outcome == OUTCOME_FAILED:
        show_tried_method(payment, method)
        signals.attempt_failed.send(payment, row)
    return row


def show_tried_method(payment: Payment, method: PspMethod) -> None:
    """A payment not paid is found by the card (or method) it was declined with: its search
    columns (type, brand, last 4) name the declined try's, as Stripe shows a failed payment's
    card. `payment_method` stays the paid charge's only, and the paid one replaces these
    (`learn_method`)."""
    if payment.payment_method is not None or method.type is None:
        return
    payment.method_type = method.type
    payment.card_brand = method.brand
    payment.card_last4 = method.last4


def learn_method(payment: Payment, method: PspMethod | None) -> None:
    """How the locked payment was paid (its successful or processing charge's method); kept
    once: a later report of the same charge changes nothing."""
    if method is None or payment.payment_method is not None:
        return
    payment.method_type = method.type
    payment.card_brand = method.brand
    payment.card_last4 = method.last4
    payment.payment_method = method.as_dict()


# The method types whose charge names a mandate whose reference PayBridge learns.
MANDATE_METHOD_TYPES = ("sepa_debit",)


def mandate_to_look_up(method: dict | None) -> str | None:
    """The mandate id of a stored payment method whose mandate reference is not known yet."""
    if not isinstance(method, dict) or method.get("type") not in MANDATE_METHOD_TYPES:
        return None
    if method.get("mandate_reference"):
        return None
    return method.get("mandate") or None


def learn_mandate_reference(payment: Payment, mandate_id: str, reference: str) -> bool:
    """The reference of the locked payment's mandate, kept beside its id once (the id must
    still be the stored method's); the caller commits. Returns whether it was recorded."""
    method = payment.payment_method
    if not isinstance(method, dict) or mandate_to_look_up(method) != mandate_id:
        return False
    payment.payment_method = {**method, "mandate_reference": reference}  # a new dict: a change
    return True


def handle_payment_intent_event(event: PspEventData, source: StatusSource) -> Handled:
    """payment_intent.payment_failed, inside the event intake's transaction: the declined
    attempt, on whatever status its payment has (a decline before the paid try is history)."""
    intent = event.payment_intent
    if intent is None or intent.last_error is None:
        return Handled(PspEvent.OUTCOME_UNHANDLED, "the event carries no payment error")
    return _record_for_intent(event, intent.id, intent.metadata, intent.last_error)


def handle_charge_event(event: PspEventData, source: StatusSource) -> Handled:
    """charge.succeeded / charge.pending / charge.failed, inside the event intake's
    transaction: how the payment was paid (its paid attempt, or a debit's method while it
    processes), or its declined attempt. The charge id keeps it one row with what the intent's
    events and the worker's lookup tell of the same charge, in whatever order they come."""
    charge = event.charge_attempt
    if charge is None or charge.payment_intent_id is None:
        return Handled(PspEvent.OUTCOME_UNHANDLED, "the event carries no charge of an intent")
    return _record_for_intent(event, charge.payment_intent_id, charge.metadata, charge.attempt)


def _record_for_intent(
    event: PspEventData, intent_id: str, metadata: dict[str, str], attempt: PspAttempt
) -> Handled:
    """An attempt an event tells of an intent, recorded on the intent's payment (locked)."""
    payment = payment_for_intent(intent_id, metadata, lock=True)
    if payment is None:
        return Handled(PspEvent.OUTCOME_UNKNOWN_SESSION, f"no payment has intent {intent_id}")
    wrong_mode = mode_mismatch(event, payment.livemode, f"payment {payment.public_id}")
    if wrong_mode:
        return Handled(PspEvent.OUTCOME_MODE_MISMATCH, wrong_mode, payment.id)
    learn_psp_ids(payment, payment_intent_id=intent_id)
    method_known = payment.payment_method is not None
    added = record_attempt(payment, attempt, psp_event_id=event.id)
    if (
        added is not None
        and added.outcome == OUTCOME_FAILED
        and payment.failure_code == "expired"
        and payment.failure_reason in _EXPIRY_REASONS
    ):
        # The checkout's expiry was applied before this (earlier) decline arrived: the reason
        # follows what the shopper did last.
        payment.failure_reason = expiry_reason(payment)
    if added is not None:
        if added.outcome == OUTCOME_FAILED:
            detail = f"declined attempt: {added.decline_code or added.failure_code}"
        else:
            detail = f"paid attempt: {added.method_type} {added.card_brand} {added.card_last4}"
        return Handled(PspEvent.OUTCOME_APPLIED, detail, payment.id)
    if not method_known and payment.payment_method is not None:
        return Handled(PspEvent.OUTCOME_APPLIED, f"method: {payment.method_type}", payment.id)
    return Handled(PspEvent.OUTCOME_IGNORED, "attempt already recorded", payment.id)


def payment_for_intent(intent_id: str, metadata: dict[str, str], *, lock: bool) -> Payment | None:
    """The payment the intent belongs to (row-locked with `lock`): by PayBridge's id in the
    intent's metadata (a declined first try comes before PayBridge learns the intent), else by
    the intent id it learned."""
    claimed = metadata.get("paybridge_payment_id")
    if claimed:
        payment = (
            lock_payment_by_public_id(claimed)
            if lock
            else db.session.scalar(select(Payment).where(Payment.public_id == claimed))
        )
        if payment is not None:
            if payment.psp_payment_intent_id in (None, intent_id):
                return payment
            return None  # another intent's: not this payment's attempt
    found = db.session.connection().execute(_PAYMENT_BY_INTENT, {"intent_id": intent_id})
    payment_id = found.scalar_one_or_none()
    if payment_id is None:
        return None
    return lock_payment(payment_id) if lock else db.session.get(Payment, payment_id)


# The worker's pass over paid payments whose charge it has not read yet (a webhook moved them;
# its event carries no charge) is incremental: it starts where the last pass completed (a
# watermark on `updated_at`, kept in `rollup_watermarks` under this name) less an overlap for
# transactions that committed late. So a worker that was down for hours catches up instead of
# losing how those payments were paid; ix_payments_status_updated serves the window.
METHOD_WATERMARK = "payment_methods"
METHOD_OVERLAP = timedelta(minutes=15)
# A payment whose lookup failed at the PSP holds the watermark back (it is looked up again on
# every pass) for this long at most: a lookup that keeps failing must not pin it for ever.
METHOD_RETRY_FOR = timedelta(days=2)


def payments_missing_their_charge(since: datetime, limit: int = 500) -> list[tuple[int, datetime]]:
    """(id, updated_at) of payments moved to PENDING or SUCCESS since `since` whose charge is
    not recorded yet (no method, or SUCCESS with no succeeded attempt: a SEPA debit's method
    came with its processing charge), or whose debit's mandate reference is not (a recorded
    method names the mandate by id only), oldest move first."""
    succeeded = exists().where(
        PaymentAttempt.payment_id == Payment.id, PaymentAttempt.outcome == OUTCOME_SUCCEEDED
    )
    # A JSON null reads as NULL here, on MySQL as on SQLite (SQLAlchemy's as_string).
    no_reference = and_(
        Payment.method_type.in_(MANDATE_METHOD_TYPES),
        Payment.payment_method["mandate"].as_string().is_not(None),
        Payment.payment_method["mandate_reference"].as_string().is_(None),
    )
    rows = db.session.execute(
        select(Payment.id, Payment.updated_at)
        .where(
            Payment.status.in_((PaymentStatus.SUCCESS.value, PaymentStatus.PENDING.value)),
            Payment.updated_at >= since,
            Payment.psp_payment_intent_id.is_not(None),
            or_(
                Payment.payment_method.is_(None),
                and_(Payment.status == PaymentStatus.SUCCESS.value, ~succeeded),
                no_reference,
            ),
        )
        .order_by(Payment.updated_at)
        .limit(limit)
    ).all()
    db.session.commit()
    return [(row.id, row.updated_at) for row in rows]


def learn_missing_charges(limit: int = 500) -> int:
    """The worker's part: each such payment's intent retrieved (one PSP call) and its method
    and paid attempt recorded, and a debit's mandate reference (one more), from the watermark
    on; then the watermark moves to where this pass completed (not past a payment the PSP
    failed to answer for, unless that failure is older than METHOD_RETRY_FOR). Idempotent;
    the webhook path itself asks the PSP nothing. Returns how many were recorded."""
    now = utcnow()
    mark = db.session.get(RollupWatermark, METHOD_WATERMARK)
    since = (mark.updated_before if mark is not None else now) - METHOD_OVERLAP
    found = payments_missing_their_charge(since, limit)
    recorded = 0
    held_at: datetime | None = None  # the oldest move whose lookup must be tried again
    for payment_id, updated_at in found:
        outcome = learn_paid_attempt(payment_id)
        recorded += outcome == "recorded"
        if outcome in ("psp error", "error") and updated_at > now - METHOD_RETRY_FOR:
            held_at = updated_at if held_at is None else min(held_at, updated_at)
    done_to = found[-1][1] if len(found) == limit else now  # a full batch: on from its last
    _save_method_watermark(min(done_to, held_at) if held_at is not None else done_to)
    return recorded


def _save_method_watermark(updated_before: datetime) -> None:
    row = db.session.get(RollupWatermark, METHOD_WATERMARK)
    if row is None:
        db.session.add(RollupWatermark(name=METHOD_WATERMARK, updated_before=updated_before))
    else:
        row.updated_before = updated_before
    db.session.commit()


def learn_paid_attempt(payment_id: int) -> str:
    """One retrieve of a PENDING or SUCCESS payment's intent with the latest charge, recorded
    (method, succeeded attempt) in a transaction of its own, then, for a debit whose mandate
    reference is not known, one retrieve of the mandate, recorded likewise; no PSP call for a
    payment whose method, paid attempt and reference are known. Never raises: a PSP error is
    answered "psp error"."""
    payment = db.session.get(Payment, payment_id)
    if payment is None or not payment.psp_payment_intent_id:
        return "no intent"
    charge_known = payment.payment_method is not None and (
        payment.status != PaymentStatus.SUCCESS or _has_attempt(payment_id, OUTCOME_SUCCEEDED)
    )
    mandate_id = mandate_to_look_up(payment.payment_method)
    if charge_known and mandate_id is None:
        db.session.commit()
        return "known"
    psp, livemode, intent_id = payment.psp, payment.livemode, payment.psp_payment_intent_id
    public_id = payment.public_id
    db.session.commit()
    try:
        provider = get_provider(psp, livemode=livemode)
    except PspError as exc:  # its mode has no key in this deployment
        log.warning("payment %s: how it was paid not learned (%s)", public_id, exc)
        return "psp error"
    outcome = "known"
    if not charge_known:
        outcome, named = _learn_charge(provider, payment_id, public_id, intent_id)
        if outcome in ("psp error", "error"):
            return outcome
        if outcome != "no charge":
            mandate_id = named  # as the method stands now, whoever recorded it
    if mandate_id is None:
        return outcome
    learned = _learn_mandate(provider, payment_id, public_id, mandate_id)
    if learned in ("psp error", "error"):
        return learned  # the watermark waits for it, as for a charge
    return "recorded" if "recorded" in (outcome, learned) else learned


def _learn_charge(
    provider: PaymentProvider, payment_id: int, public_id: str, intent_id: str
) -> tuple[str, str | None]:
    """The intent's latest charge recorded; with the mandate whose reference is still to
    learn, if the method recorded names one."""
    try:
        intent = provider.retrieve_payment_intent(intent_id)
    except PspError as exc:
        log.warning("payment %s: how it was paid not learned (%s)", public_id, exc)
        return "psp error", None
    charge = intent.latest_charge
    if charge is None:
        return "no charge", None

    def record() -> tuple[str, str | None]:
        locked = lock_payment(payment_id)
        added = record_attempt(locked, charge)
        mandate_id = mandate_to_look_up(locked.payment_method)
        db.session.commit()
        return "recorded" if added else "known", mandate_id

    try:
        return retry_lock_conflicts(record, what=f"attempt of {public_id}")
    except Exception:
        rollback_quietly()
        log.exception("payment %s: its paid attempt could not be recorded", public_id)
        return "error", None


def _learn_mandate(
    provider: PaymentProvider, payment_id: int, public_id: str, mandate_id: str
) -> str:
    """The mandate's reference retrieved (no lock held) and recorded under the payment's lock."""
    try:
        reference = provider.retrieve_mandate_reference(mandate_id)
    except PspError as exc:
        log.warning(
            "payment %s: mandate %s's reference not learned (%s)", public_id, mandate_id, exc
        )
        return "psp error"
    if reference is None:
        log.warning("payment %s: mandate %s has no reference at the PSP", public_id, mandate_id)
        return "no reference"

    def record() -> str:
        locked = lock_payment(payment_id)
        added = learn_mandate_reference(locked, mandate_id, reference)
        db.session.commit()
        return "recorded" if added else "known"

    try:
        return retry_lock_conflicts(record, what=f"mandate reference of {public_id}")
    except Exception:
        rollback_quietly()
        log.exception("payment %s: its mandate reference could not be recorded", public_id)
        return "error"
