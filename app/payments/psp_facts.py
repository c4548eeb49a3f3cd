"""Applying what the PSP says about a checkout session to its payment: the same rules for a
webhook event, the shopper's return, reconciliation, and PayBridge's own PSP calls.

Every fact takes the same path: find the payment the session belongs to and lock its row,
cross-check that the session really is that payment's (ids, amount, currency), then move the
payment with the transitions the table allows (`outcomes` says which status a fact proves). A
fact that would move a payment backwards is recorded and ignored; one that contradicts a final
status (paid after PayBridge failed it) becomes a conflict for a person to settle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.exc import NoResultFound

from app.common.locks import retry_lock_conflicts, rollback_quietly
from app.errors import PayBridgeError
from app.extensions import db
from app.metrics import PAYMENT_CONFLICTS
from app.models import Payment, PaymentConflict, PaymentStatus, PspEvent, StatusSource
from app.models.payment import PAYMENT_TRANSITIONS
from app.payments import failure_reasons
from app.payments.attempts import (
    expiry_reason,
    record_attempt,
)
from app.payments.outcomes import failure_reason, is_backwards, target_for_event, target_for_session
from app.payments.state import learn_psp_ids, lock_payment, lock_payment_by_public_id, transition
from app.psp.base import CheckoutSession, PspEventData
from app.psp_events.intake import Handled, mode_mismatch

log = logging.getLogger(__name__)

# The checkout events the payment core handles (`app/wiring.py` registers them).
CHECKOUT_EVENT_TYPES = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
)
# apply_session only: the PSP's state proves nothing new (still open, or already applied).
OUTCOME_UNCHANGED = "unchanged"


@dataclass(frozen=True)
class _Applied:
    outcome: str
    detail: str | None = None
    conflict_kind: str | None = None  # a PaymentConflict row was added


def handle_checkout_event(event: PspEventData, source: StatusSource) -> Handled:
    """A checkout.session.* event, inside the event intake's transaction."""
    session = event.session
    if session is None:
        return Handled(PspEvent.OUTCOME_UNHANDLED, "the event carries no checkout session")
    payment = _lock_payment_for_session(session)
    if payment is None:
        return Handled(
            PspEvent.OUTCOME_UNKNOWN_SESSION,
            f"no payment has session {session.id} "
            f"(client_reference_id={session.client_reference_id!r})",
        )
    wrong_mode = mode_mismatch(event, payment.livemode, f"payment {payment.public_id}")
    if wrong_mode:
        return Handled(PspEvent.OUTCOME_MODE_MISMATCH, wrong_mode, payment.id)
    applied = _apply(
        payment,
        session,
        target_for_event(event.type, session),
        source=source,
        psp_event_id=event.id,
        event_type=event.type,
    )
    count_conflict = None
    if applied.conflict_kind:  # counted once committed: a retried transaction counts once
        count_conflict = PAYMENT_CONFLICTS.labels(applied.conflict_kind).inc
    return Handled(applied.outcome, applied.detail, payment.id, after_commit=count_conflict)


def apply_session(
    payment_id: int,
    session: CheckoutSession,
    *,
    source: StatusSource,
    psp_event_id: str | None = None,
) -> str:
    """Apply a retrieved checkout session's state to the payment (return page, recon); commit.

    Returns the outcome: applied, unchanged, ignored (would move it backwards), mismatch
    (the session is not this payment's) or conflict (paid after PayBridge failed it).
    """

    def apply_and_commit() -> tuple[Payment, _Applied]:
        try:
            payment = lock_payment(payment_id)
        except NoResultFound as exc:
            raise PayBridgeError("PAYMENT_NOT_FOUND") from exc
        applied = _apply(
            payment,
            session,
            target_for_session(session),
            source=source,
            psp_event_id=psp_event_id,
            event_type=None,
        )
        db.session.commit()
        return payment, applied

    try:
        payment, applied = retry_lock_conflicts(apply_and_commit, what=f"session {session.id}")
    except Exception:
        rollback_quietly()
        raise
    if applied.conflict_kind:
        PAYMENT_CONFLICTS.labels(applied.conflict_kind).inc()
    log.info(
        "session %s applied to payment %s (source=%s): %s%s",
        session.id,
        payment.public_id,
        source,
        applied.outcome,
        f" ({applied.detail})" if applied.detail else "",
    )
    return applied.outcome


def apply_own_session(
    payment: Payment, session: CheckoutSession, *, source: StatusSource, reason: str
) -> PaymentStatus | None:
    """Move a locked payment to what its own session proves, as the PSP just answered a call of
    PayBridge's (registration, expiry): no cross-check needed. Returns the proven status."""
    target = target_for_session(session)
    learn_psp_ids(
        payment,
        payment_intent_id=session.payment_intent_id,
        subscription_id=session.subscription_id,
    )
    current = payment.status_enum
    if target is None or target == current:
        return target
    if is_backwards(current, target) or not PAYMENT_TRANSITIONS.allows(current, target):
        return target
    code, why, reason_code = None, reason, None
    if target == PaymentStatus.FAILED:
        code, why = failure_reason(None, session)
        reason_code = _failure_reason(payment, None, session)
    transition(
        payment,
        target,
        source=source,
        reason=why,
        failure_code=code,
        failure_message=why,
        failure_reason=reason_code,
    )
    if session.latest_charge is not None:
        record_attempt(payment, session.latest_charge)
    return target


def _failure_reason(payment: Payment, event_type: str | None, session: CheckoutSession) -> str:
    """The failure_reason code of a payment the PSP's session fails: a checkout that expired
    (canceled by the shopper or declined, by what they did last); else a delayed payment that
    failed: declined by the bank, unless the PSP itself refused it (by its charge's codes)."""
    if session.status == "expired" or event_type == "checkout.session.expired":
        return expiry_reason(payment)
    charge = session.latest_charge
    codes = [session.failure_code, *((charge.decline_code, charge.failure_code) if charge else ())]
    if any(code in failure_reasons.PSP_REFUSAL_CODES for code in codes):
        return failure_reasons.REJECTED_BY_PSP
    # A delayed payment failing after it was processed is the bank's refusal (the event's
    # session names no code; Stripe's own refusals come with theirs).
    return failure_reasons.DECLINED


# Built once: every event runs it.
_SESSION_PAYMENT_ID = select(Payment.id).where(Payment.psp_session_id == bindparam("session_id"))


def _lock_payment_for_session(session: CheckoutSession) -> Payment | None:
    """The payment the session belongs to, row-locked: by session id, else by our own id.

    A payment still CREATED (its registration answer was lost) has no session id yet; the
    session names it through client_reference_id and metadata. The lookup by session id is a
    plain read (a locking read of a missing key would gap-lock the index against the payment
    core recording a session id); if it misses because a registration committed meanwhile,
    the locking read by public id, which sees the latest rows, still finds the payment.
    """
    payment_id = (
        db.session.connection()
        .execute(_SESSION_PAYMENT_ID, {"session_id": session.id})
        .scalar_one_or_none()
    )
    if payment_id is not None:
        return lock_payment(payment_id)  # payments are never deleted: the id still names one
    claimed = session.client_reference_id or session.metadata.get("paybridge_payment_id")
    if claimed:
        return lock_payment_by_public_id(claimed)
    return None


def _apply(
    payment: Payment,
    session: CheckoutSession,
    target: PaymentStatus | None,
    *,
    source: StatusSource,
    psp_event_id: str | None,
    event_type: str | None,
) -> _Applied:
    """The rules, on a locked payment. Flushes; the caller commits."""
    problem = _mismatch(payment, session)
    if problem:
        kind = PaymentConflict.KIND_MISMATCH
        added = _record_conflict(payment, kind, session, psp_event_id, problem)
        return _Applied(PspEvent.OUTCOME_MISMATCH, problem, kind if added else None)

    current = payment.status_enum
    learn_psp_ids(
        payment,
        payment_intent_id=session.payment_intent_id,
        subscription_id=session.subscription_id,
    )
    same_outcome = PspEvent.OUTCOME_IGNORED if event_type else OUTCOME_UNCHANGED
    if target is None:
        if current == PaymentStatus.CREATED:
            _record_registration(payment, session, source=source, psp_event_id=psp_event_id)
            return _Applied(PspEvent.OUTCOME_APPLIED, "CREATED -> INITIATED")
        return _Applied(OUTCOME_UNCHANGED, f"session {session.status}: nothing to apply")
    if target == current:
        return _Applied(same_outcome, f"already {current}")
    if current == PaymentStatus.FAILED and target == PaymentStatus.SUCCESS:
        kind = PaymentConflict.KIND_PAID_AFTER_FAILED
        detail = (
            f"session {session.id} was paid ({session.amount_total} {session.currency}) "
            f"after the payment was FAILED ({payment.failure_code}): refund or settle by hand"
        )
        added = _record_conflict(payment, kind, session, psp_event_id, detail)
        return _Applied(PspEvent.OUTCOME_CONFLICT, detail, kind if added else None)
    if is_backwards(current, target):
        return _Applied(
            PspEvent.OUTCOME_IGNORED, f"{current} -> {target} would move the payment backwards"
        )

    if current == PaymentStatus.CREATED:
        _record_registration(payment, session, source=source, psp_event_id=psp_event_id)
    failure_code = failure_message = reason_code = None
    if target == PaymentStatus.FAILED:
        failure_code, failure_message = failure_reason(event_type, session)
        reason_code = _failure_reason(payment, event_type, session)
    if event_type:
        reason = f"{event_type} (payment_status={session.payment_status})"
    else:
        reason = f"session {session.status}/{session.payment_status}"
    transition(
        payment,
        target,
        source=source,
        reason=reason,
        psp_event_id=psp_event_id,
        failure_code=failure_code,
        failure_message=failure_message,
        failure_reason=reason_code,
    )
    # A retrieved session carries the charge (how the shopper paid); an event's does not: the
    # worker's learn_missing_charges reads it then.
    if session.latest_charge is not None and target in (
        PaymentStatus.PENDING,
        PaymentStatus.SUCCESS,
    ):
        record_attempt(payment, session.latest_charge)
    return _Applied(PspEvent.OUTCOME_APPLIED, f"{current} -> {target}")


def _mismatch(payment: Payment, session: CheckoutSession) -> str | None:
    """Why this session cannot be this payment's, or None when every fact agrees."""
    problems = []
    if payment.psp_session_id and payment.psp_session_id != session.id:
        problems.append(f"the payment's session is {payment.psp_session_id}, not {session.id}")
    claims = (
        ("client_reference_id", session.client_reference_id),
        ("metadata.paybridge_payment_id", session.metadata.get("paybridge_payment_id")),
    )
    for label, value in claims:
        if value and value != payment.public_id:
            problems.append(f"{label} {value!r} is not {payment.public_id}")
    reference = session.metadata.get("merchant_reference")
    if reference and reference != payment.merchant_reference:
        problems.append(f"metadata.merchant_reference {reference!r} differs")
    if session.amount_total is None or session.amount_total != payment.amount:
        problems.append(f"amount {session.amount_total} is not {payment.amount}")
    if (session.currency or "").upper() != payment.currency.upper():
        problems.append(f"currency {session.currency} is not {payment.currency}")
    return "; ".join(problems) or None


def _record_registration(
    payment: Payment, session: CheckoutSession, *, source: StatusSource, psp_event_id: str | None
) -> None:
    """A CREATED payment whose session the PSP proves exists: registered after all."""
    payment.psp_session_id = session.id
    if session.url and not payment.checkout_url:
        payment.checkout_url = session.url
    if session.expires_at and not payment.psp_expires_at:
        payment.psp_expires_at = session.expires_at
    transition(
        payment,
        PaymentStatus.INITIATED,
        source=source,
        reason=f"registration confirmed by the PSP (session {session.id})",
        psp_event_id=psp_event_id,
    )


def _record_conflict(
    payment: Payment,
    kind: str,
    session: CheckoutSession,
    psp_event_id: str | None,
    detail: str,
) -> bool:
    """Add an open conflict unless the same one is already open (recon sees facts repeatedly).

    A locking read: this transaction's snapshot can predate the payment's lock, and a webhook
    and reconciliation reporting the same session may both get here; the one that waited must
    see the conflict the other committed. Conflicts are written only under their payment's
    lock, which the caller holds, so this waits on no one."""
    open_already = db.session.execute(
        select(PaymentConflict.id)
        .where(
            PaymentConflict.payment_id == payment.id,
            PaymentConflict.kind == kind,
            PaymentConflict.psp_session_id == session.id,
            PaymentConflict.resolved_at.is_(None),
        )
        .limit(1)
        .with_for_update()
    ).scalar_one_or_none()
    if open_already is not None:
        return False
    db.session.add(
        PaymentConflict(
            payment_id=payment.id,
            merchant_id=payment.merchant_id,
            kind=kind,
            psp_event_id=psp_event_id,
            psp_session_id=session.id,
            detail=detail,
        )
    )
    db.session.flush()
    log.warning("payment %s: conflict %s: %s", payment.public_id, kind, detail)
    return True
