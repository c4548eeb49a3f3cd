"""Resolving payment conflicts: refund money paid after PayBridge failed the payment, or close a
conflict with a note once it was settled by hand.

A `paid_after_failed` conflict means the customer paid at the PSP for a payment PayBridge had
already FAILED (and told the merchant so). A final status never changes, so the only clean way
out is to give the money back. The order of work, as for refunds (app/refunds/service.py):

1. lock the conflict row, check it is open and refundable, note "refund requested" in its
   `resolution` (so a later attempt knows an earlier one may have reached the PSP); commit.
2. outside any transaction: ask the PSP for the session's payment intent and refund the whole
   amount paid, with an idempotency key derived from the conflict — a double click, a retry or
   a second operator gets the same refund back, never a second one.
3. lock the conflict again and record the PSP's refund in `resolution`, with `resolved_at`.

The money is NOT a PayBridge `Refund` row: refunds belong to SUCCESS payments (they count into
`refunded_amount`, reserve against `amount`, notify the merchant with `refund.*` events), and
this payment is FAILED for good — the merchant was told nothing was paid. The PSP's refund id in
the conflict's resolution, the audit log and the metric are its record.

The PSP refusing, or the refund failing → CONFLICT_REFUND_REJECTED and the conflict stays open
(settle it by hand, then mark it resolved); the PSP unreachable → PSP_UNAVAILABLE, still open,
and trying again is safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.common.locks import lock_row
from app.errors import PayBridgeError
from app.extensions import db
from app.metrics import PAYMENT_CONFLICTS_RESOLVED
from app.models import PaymentConflict, PaymentStatus, iso, utcnow
from app.psp import PspError, get_provider
from app.psp.base import PspRefund, RefundRequest

log = logging.getLogger(__name__)

__all__ = ["REFUND_REQUESTED", "conflict_idempotency_key", "refund_conflict", "resolve_conflict"]

# The prefix of `resolution` while a refund is asked of the PSP (the conflict is still open).
REFUND_REQUESTED = "refund requested"
REFUNDED = "refunded at the PSP"
MAX_NOTE = 400
_FAILED_REFUND_STATUSES = ("failed", "canceled")


@dataclass(frozen=True)
class _Plan:
    """What step 2 needs, read under the lock in step 1 (no ORM object crosses the PSP call)."""

    conflict_id: int
    kind: str
    psp: str
    livemode: bool
    session_id: str
    payment_public_id: str
    amount: int
    currency: str
    reference: str
    idempotency_key: str
    tried_before: bool


def conflict_idempotency_key(conflict_id: int, payment_public_id: str) -> str:
    """The PSP idempotency key of a conflict's refund: the same for every attempt.

    The payment's public id is part of it so that conflict ids handed out again (a restored
    database, another environment on the same PSP account) can never replay another refund.
    """
    return f"paybridge-conflict-{conflict_id}-{payment_public_id}"


def _reference(conflict_id: int) -> str:
    # Sent as the refund's metadata.paybridge_refund_id: finds the refund when an answer was lost.
    return f"conflict_{conflict_id}"


def _lock_conflict(conflict_id: int) -> PaymentConflict:
    conflict = lock_row(PaymentConflict, conflict_id)
    if conflict is None:
        raise PayBridgeError("CONFLICT_NOT_FOUND", details={"conflict_id": conflict_id})
    return conflict


def _check_open(conflict: PaymentConflict) -> None:
    if conflict.resolved_at is not None:
        raise PayBridgeError(
            "CONFLICT_ALREADY_RESOLVED",
            f"Conflict {conflict.id} was resolved at {iso(conflict.resolved_at)}: "
            f"{conflict.resolution or 'no note'}.",
            details={
                "conflict_id": conflict.id,
                "resolved_at": iso(conflict.resolved_at),
                "resolution": conflict.resolution,
            },
        )


def _actor(actor: str) -> str:
    actor = (actor or "").strip()
    if not actor:
        raise ValueError("actor must name who resolves the conflict")
    return actor[:120]


# -- refund ---------------------------------------------------------------------------------------


def refund_conflict(conflict_id: int, *, actor: str) -> PaymentConflict:
    """Refund at the PSP the whole amount paid after PayBridge FAILED the payment; resolves it.

    Raises CONFLICT_NOT_FOUND, CONFLICT_ALREADY_RESOLVED, CONFLICT_NOT_REFUNDABLE,
    CONFLICT_REFUND_REJECTED or PSP_UNAVAILABLE; on each of them the conflict stays as it was
    (open unless already resolved), with the attempt noted in its `resolution`.
    """
    actor = _actor(actor)
    db.session.commit()  # end the caller's read: the decision is taken on the locked row
    try:
        plan = _request(conflict_id, actor)
    except PayBridgeError:
        db.session.rollback()
        raise
    psp_refund, intent = _refund_at_psp(plan)
    return _record_refund(plan, psp_refund, intent, actor)


def _request(conflict_id: int, actor: str) -> _Plan:
    """Step 1: lock, check, note the request; commits."""
    conflict = _lock_conflict(conflict_id)
    _check_open(conflict)
    payment = conflict.payment
    why = None
    if conflict.kind != PaymentConflict.KIND_PAID_AFTER_FAILED:
        why = (
            f"it is a {conflict.kind} conflict: the PSP's facts do not match the payment, so "
            "settle it at the PSP by hand and mark it resolved"
        )
    elif payment is None:
        why = "it names no payment"
    elif payment.status != PaymentStatus.FAILED:
        why = f"its payment is {payment.status}, not FAILED"
    session_id = conflict.psp_session_id or (payment.psp_session_id if payment else None)
    if why is None and not session_id:
        why = "no PSP session is known for it"
    if why is not None:
        raise PayBridgeError(
            "CONFLICT_NOT_REFUNDABLE",
            f"Conflict {conflict.id} cannot be refunded: {why}.",
            details={"conflict_id": conflict.id, "kind": conflict.kind},
        )
    assert payment is not None  # refused above otherwise
    plan = _Plan(
        conflict_id=conflict.id,
        kind=conflict.kind,
        psp=payment.psp,
        livemode=payment.livemode,
        session_id=session_id,
        payment_public_id=payment.public_id,
        amount=payment.amount,
        currency=payment.currency,
        reference=_reference(conflict.id),
        idempotency_key=conflict_idempotency_key(conflict.id, payment.public_id),
        tried_before=bool(conflict.resolution),
    )
    conflict.resolution = f"{REFUND_REQUESTED} by {actor} at {iso(utcnow())}"[:500]
    db.session.commit()  # no transaction stays open while the PSP is called
    log.info(
        "conflict %s (payment %s): refund of session %s requested by %s",
        plan.conflict_id,
        plan.payment_public_id,
        plan.session_id,
        actor,
    )
    return plan


def _refund_at_psp(plan: _Plan) -> tuple[PspRefund, str]:
    """Step 2, no transaction open: the session's payment intent, then its full refund."""
    provider = get_provider(plan.psp, livemode=plan.livemode)
    try:
        session = provider.retrieve_checkout_session(plan.session_id)
        if session.payment_status != "paid" or not session.payment_intent_id:
            _note_attempt(
                plan.conflict_id,
                f"not refunded: the PSP reports session {plan.session_id} "
                f"{session.status}/{session.payment_status}, without a paid payment intent",
            )
            raise PayBridgeError(
                "CONFLICT_NOT_REFUNDABLE",
                f"The PSP does not report session {plan.session_id} as paid "
                f"({session.status}/{session.payment_status}); there is nothing to refund. "
                "Check it at the PSP and mark the conflict resolved.",
                details={"conflict_id": plan.conflict_id, "psp_session_id": plan.session_id},
            )
        request = RefundRequest(
            refund_id=plan.reference,
            payment_id=plan.payment_public_id,
            payment_intent_id=session.payment_intent_id,
            idempotency_key=plan.idempotency_key,
            amount=session.amount_total if session.amount_total is not None else plan.amount,
            currency=(session.currency or plan.currency).upper(),
        )
        psp_refund = provider.find_refund_made_for(request) if plan.tried_before else None
        if psp_refund is None:
            psp_refund = provider.create_refund(request)
    except PspError as exc:
        code = (exc.code or type(exc).__name__)[:100]
        if exc.retryable:
            _note_attempt(
                plan.conflict_id, f"not refunded yet: the PSP could not be reached ({code})"
            )
            raise PayBridgeError(
                "PSP_UNAVAILABLE",
                f"The PSP could not be reached ({code}); nothing was recorded as refunded. "
                "Trying again is safe: it can never refund twice.",
                details={"conflict_id": plan.conflict_id},
                headers={"Retry-After": "5"},
            ) from exc
        _note_attempt(plan.conflict_id, f"not refunded: the PSP refused ({code}): {exc.message}")
        raise PayBridgeError(
            "CONFLICT_REFUND_REJECTED",
            f"The PSP refused the refund ({code}): {exc.message}"[:1000],
            details={"conflict_id": plan.conflict_id, "psp_code": code},
        ) from exc
    return psp_refund, request.payment_intent_id


def _note_attempt(conflict_id: int, text: str) -> None:
    """Keep why an attempt did not resolve the conflict (on an open conflict only); commits."""
    try:
        conflict = _lock_conflict(conflict_id)
        if conflict.resolved_at is None:
            conflict.resolution = f"{text} ({iso(utcnow())})"[:500]
        db.session.commit()
    except Exception:  # the attempt's own error matters more than this note
        db.session.rollback()
        log.exception("conflict %s: could not note the failed refund attempt", conflict_id)
    log.warning("conflict %s: %s", conflict_id, text)


def _record_refund(plan: _Plan, psp_refund: PspRefund, intent: str, actor: str) -> PaymentConflict:
    """Step 3: the PSP's refund on the locked conflict; resolves it unless the refund failed."""
    conflict = _lock_conflict(plan.conflict_id)
    money = f"{psp_refund.amount} {(psp_refund.currency or plan.currency).upper()}"
    if psp_refund.status in _FAILED_REFUND_STATUSES:
        if conflict.resolved_at is None:
            conflict.resolution = (
                f"refund {psp_refund.id} {psp_refund.status} at the PSP "
                f"({psp_refund.failure_reason or 'no reason given'}); settle it by hand"
            )[:500]
        db.session.commit()
        log.warning(
            "conflict %s: PSP refund %s %s", plan.conflict_id, psp_refund.id, psp_refund.status
        )
        raise PayBridgeError(
            "CONFLICT_REFUND_REJECTED",
            f"The PSP's refund {psp_refund.id} {psp_refund.status} "
            f"({psp_refund.failure_reason or 'no reason given'}); the money was not returned. "
            "Settle it with the customer by hand, then mark the conflict resolved.",
            details={
                "conflict_id": plan.conflict_id,
                "psp_refund_id": psp_refund.id,
                "psp_code": psp_refund.failure_reason,
            },
        )
    text = f"{REFUNDED}: {psp_refund.id} ({psp_refund.status}); {money} of {intent}, by {actor}"
    if conflict.resolved_at is not None:
        # Resolved meanwhile (a twin request, or marked by hand): keep that, add the refund.
        if psp_refund.id not in (conflict.resolution or ""):
            conflict.resolution = f"{conflict.resolution or ''}; also {text}"[:500]
        db.session.commit()
        return conflict
    conflict.resolved_at = utcnow()
    conflict.resolution = text[:500]
    db.session.commit()
    PAYMENT_CONFLICTS_RESOLVED.labels(plan.kind, "refunded").inc()
    log.info(
        "conflict %s (payment %s) resolved: %s",
        plan.conflict_id,
        plan.payment_public_id,
        conflict.resolution,
    )
    return conflict


# -- resolve by hand ------------------------------------------------------------------------------


def resolve_conflict(conflict_id: int, *, actor: str, note: str) -> PaymentConflict:
    """Close a conflict that was settled some other way, saying how (any kind)."""
    actor = _actor(actor)
    note = " ".join((note or "").split())
    if not note:
        raise PayBridgeError(
            "VALIDATION_ERROR",
            "Say how the conflict was settled.",
            param="note",
            details={"note": ["Missing data for required field."]},
        )
    if len(note) > MAX_NOTE:
        raise PayBridgeError(
            "VALIDATION_ERROR",
            f"The note is longer than {MAX_NOTE} characters.",
            param="note",
            details={"note": [f"Longer than maximum length {MAX_NOTE}."]},
        )
    db.session.commit()
    try:
        conflict = _lock_conflict(conflict_id)
        _check_open(conflict)
    except PayBridgeError:
        db.session.rollback()
        raise
    conflict.resolved_at = utcnow()
    conflict.resolution = f"resolved by {actor}: {note}"[:500]
    kind = conflict.kind
    db.session.commit()
    PAYMENT_CONFLICTS_RESOLVED.labels(kind, "marked").inc()
    log.info("conflict %s (%s) marked resolved by %s", conflict_id, kind, actor)
    return conflict
