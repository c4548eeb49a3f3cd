"""Refunding SUCCESS payments, exactly once, never more than was paid.

The order of work (issue 6):

1. validate; lock the payment row (SELECT … FOR UPDATE); check it is SUCCESS and that the amount
   fits in what remains: the amount paid minus every refund that is `pending` or `succeeded`.
   A pending refund reserves its amount, so however many requests race, their sum can never
   pass the amount paid. Insert the refund `pending` (with its Idempotency-Key record); commit.
2. call the PSP outside any transaction, with an idempotency key derived from the refund's id.
3. lock the payment and the refund, record the PSP's refund id and status; commit.

The PSP refusing → the refund is `failed` (its amount released) and the client is notified.
The PSP unreachable → it stays `pending` without a PSP id: a retry with the same Idempotency-Key,
or reconciliation, submits it again with the same PSP key, so the PSP makes one refund at most.
`payment.refunded_amount` is the sum of the succeeded refunds only; the payment stays SUCCESS.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace

from prometheus_client import Counter
from sqlalchemy import select

from app.common import idempotency
from app.common.idempotency import CommandResult, IdempotentCommand, IdempotentRequest
from app.common.locks import lock_row
from app.common.money import MAX_CHARGE_AMOUNT, hundredths_problem
from app.errors import PayBridgeError
from app.extensions import db
from app.models import (
    IdempotencyRecord,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    StatusSource,
    utcnow,
)
from app.models.refund import REFUND_TRANSITIONS, RESERVING_STATUSES
from app.payments.queries import get_payment
from app.payments.state import learn_psp_ids, lock_payment
from app.psp import PspError, PspRejected, get_provider
from app.psp.base import PspRefund, RefundRequest
from app.refunds import signals
from app.serializers.refund import refund_to_dict
from app.subscriptions.service import learn_payment_intent

log = logging.getLogger(__name__)

REFUNDS = Counter(
    "paybridge_refunds_total",
    "Refund requests and outcomes (requested, refused, submitted, psp_unavailable, "
    "succeeded, failed)",
    ["outcome"],
)
REFUNDED_MINOR_UNITS = Counter(
    "paybridge_refunded_minor_units_total", "Amount of succeeded refunds", ["currency"]
)

CREATE_METHOD = "POST"
# The reasons Stripe accepts; anything else would be refused by the PSP.
REASONS = ("duplicate", "fraudulent", "requested_by_customer")
ALLOWED_PARAMS = frozenset({"amount", "reason"})
# What a PSP refund status means for ours (pending / requires_action: not decided yet).
_PSP_TARGETS = {
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.FAILED,
}


RefundResult = CommandResult[Refund]


def refund_path(payment_public_id: str) -> str:
    return f"/api/v1/payments/{payment_public_id}/refunds"


# -- validation ---------------------------------------------------------------------------------


def validate_refund_params(params: dict | None) -> dict:
    """{"amount": int | None, "reason": str | None}, or VALIDATION_ERROR / INVALID_REFUND_AMOUNT."""
    params = params or {}
    unknown = sorted(set(params) - ALLOWED_PARAMS)
    if unknown:
        raise PayBridgeError(
            "VALIDATION_ERROR",
            f"Unknown field(s): {', '.join(unknown)}.",
            param=unknown[0],
            details={name: ["Unknown field."] for name in unknown},
        )
    amount = params.get("amount")
    if amount is not None:
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise PayBridgeError(
                "VALIDATION_ERROR",
                "amount must be an integer in minor units (e.g. 1050 for 10.50).",
                param="amount",
                details={"amount": ["Not a valid integer."]},
            )
        if amount <= 0:
            raise PayBridgeError(
                "INVALID_REFUND_AMOUNT",
                f"amount must be at least 1 (minor units); got {amount}.",
                param="amount",
            )
        # Stripe refunds any amount from 1 minor unit (no per-currency minimum, unlike a
        # charge) up to what remains of the charge, itself at most MAX_CHARGE_AMOUNT.
        if amount > MAX_CHARGE_AMOUNT:
            raise PayBridgeError(
                "INVALID_REFUND_AMOUNT",
                f"amount must be at most {MAX_CHARGE_AMOUNT}.",
                param="amount",
            )
    reason = params.get("reason")
    if reason is not None and reason not in REASONS:
        raise PayBridgeError(
            "VALIDATION_ERROR",
            f"reason must be one of {', '.join(REASONS)}.",
            param="reason",
            details={"reason": [f"Must be one of: {', '.join(REASONS)}."]},
        )
    return {"amount": amount, "reason": reason}


def fingerprint(payment_public_id: str, data: dict) -> str:
    canonical = json.dumps({"payment": payment_public_id, **data}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- create -------------------------------------------------------------------------------------


def create_refund(
    merchant_id: int,
    payment_public_id: str,
    params: dict | None,
    *,
    idempotency_key: str | None,
    livemode: bool | None = None,
    source: StatusSource = StatusSource.API,
) -> Refund:
    """Refund (part of) one of the merchant's SUCCESS payments; returns the refund."""
    return submit_refund(
        merchant_id,
        payment_public_id,
        params,
        idempotency_key=idempotency_key,
        livemode=livemode,
        source=source,
    ).subject


def submit_refund(
    merchant_id: int,
    payment_public_id: str,
    params: dict | None,
    *,
    idempotency_key: str | None,
    livemode: bool | None = None,
    source: StatusSource = StatusSource.API,
) -> RefundResult:
    """create_refund for the API: also the (possibly replayed) HTTP status and body.
    `livemode`: the API key's mode; a payment of the other mode is PAYMENT_NOT_FOUND (None, the
    dashboard: the payment's own mode). The Idempotency-Key is the payment's mode's.

    201: submitted to the PSP (status pending or succeeded); 202: accepted and its amount
    reserved, but the PSP could not be reached — a retry with the same key or reconciliation
    submits it.
    """
    data = validate_refund_params(params)
    key = idempotency.check_key(idempotency_key)
    payment = get_payment(merchant_id, payment_public_id, livemode=livemode)
    payment_id, public_id, mode = payment.id, payment.public_id, payment.livemode
    db.session.commit()  # end the read: the decision is taken on the locked row only
    request = IdempotentRequest(
        merchant_id, key, CREATE_METHOD, refund_path(public_id), fingerprint(public_id, data), mode
    )
    return _CreateRefund(payment_id, public_id, data, source).run(request)


class _CreateRefund(IdempotentCommand[Refund, tuple[int, int | None]]):
    what = "refund"

    def __init__(self, payment_id: int, public_id: str, data: dict, source: StatusSource):
        self.payment_id, self.public_id = payment_id, public_id
        self.data, self.source = data, source

    def start(self, request: IdempotentRequest) -> tuple[int, int | None]:
        """Reserve the amount: a pending refund, decided on the locked payment."""
        try:
            payment = lock_payment(self.payment_id)
            amount = _check_refundable(payment, self.data["amount"])
            record = request.new_record()
            if record is not None:
                record.payment_id = payment.id
                db.session.flush()
            refund = Refund(
                payment_id=payment.id,
                merchant_id=payment.merchant_id,
                livemode=payment.livemode,
                amount=amount,
                currency=payment.currency,
                status=RefundStatus.PENDING.value,
                reason=self.data["reason"],
                source=self.source.value,
                psp=payment.psp,
                idempotency_record_id=record.id if record else None,
                created_at=utcnow(),
            )
            db.session.add(refund)
            db.session.commit()
        except PayBridgeError:
            db.session.rollback()
            REFUNDS.labels("refused").inc()
            raise
        REFUNDS.labels("requested").inc()
        log.info(
            "refund %s of %s %s on payment %s reserved (source=%s)",
            refund.public_id,
            amount,
            refund.currency,
            self.public_id,
            self.source,
        )
        return refund.id, (record.id if record else None)

    def finish(self, started: tuple[int, int | None]) -> tuple[Refund, idempotency.StoredResponse]:
        return _submit(*started)

    def subject_of(self, record: IdempotencyRecord) -> Refund | None:
        # Same merchant and not older than the record: never a refund of a purged record whose
        # id a database without foreign keys (SQLite) handed out again.
        return db.session.execute(
            select(Refund)
            .where(
                Refund.idempotency_record_id == record.id,
                Refund.merchant_id == record.merchant_id,
                Refund.created_at >= record.created_at,
            )
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()

    def replay_body(self, stored: idempotency.StoredResponse, refund: Refund) -> dict:
        return refund_to_dict(refund)  # the same refund, as it is now (it may have finished)

    def finish_claimed(
        self, record: IdempotencyRecord, refund: Refund
    ) -> tuple[Refund, idempotency.StoredResponse]:
        # The previous attempt could not reach the PSP, or died: submit it, same PSP key.
        return _submit(refund.id, record.id)

    def in_progress_details(self, refund: Refund) -> dict:
        return {"refund_id": refund.public_id}


def _check_refundable(payment: Payment, requested: int | None) -> int:
    """The amount to refund, decided on the locked payment; raises when it cannot be."""
    if payment.status != PaymentStatus.SUCCESS:
        raise PayBridgeError(
            "REFUND_NOT_ALLOWED",
            f"Only a SUCCESS payment can be refunded; {payment.public_id} is {payment.status}.",
            details={"payment_id": payment.public_id, "status": payment.status},
        )
    if requested is not None and hundredths_problem(requested, payment.currency):
        raise PayBridgeError(
            "INVALID_REFUND_AMOUNT",
            hundredths_problem(requested, payment.currency),
            param="amount",
        )
    remaining = payment.amount - reserved_amount(payment.id)
    amount = remaining if requested is None else requested
    if remaining <= 0 or amount > remaining:
        what = "Nothing remains to refund" if remaining <= 0 else f"Only {remaining} remains"
        raise PayBridgeError(
            "REFUND_AMOUNT_EXCEEDS_REMAINING",
            f"{what} on {payment.public_id} (amount {payment.amount}, refunded or pending "
            f"{payment.amount - remaining}).",
            param="amount",
            details={
                "payment_id": payment.public_id,
                "amount": payment.amount,
                "remaining": max(remaining, 0),
            },
        )
    return amount


def reserved_amount(payment_id: int) -> int:
    """Sum of the payment's pending and succeeded refunds, by a locking read.

    A locking read sees the latest committed rows whatever the transaction's snapshot, so a
    refund committed by a request that held the payment lock just before is always counted.
    """
    amounts = db.session.scalars(
        select(Refund.amount)
        .where(Refund.payment_id == payment_id, Refund.status.in_(RESERVING_STATUSES))
        .with_for_update()
    ).all()
    return sum(amounts)


def remaining_amount(payment: Payment) -> int:
    """What could still be refunded now (a plain read; the create path decides under lock)."""
    if payment.status != PaymentStatus.SUCCESS:
        return 0
    amounts = db.session.scalars(
        select(Refund.amount).where(
            Refund.payment_id == payment.id, Refund.status.in_(RESERVING_STATUSES)
        )
    ).all()
    return max(payment.amount - sum(amounts), 0)


# -- the PSP call -------------------------------------------------------------------------------


def _submit(
    refund_id: int, record_id: int | None, *, source: StatusSource = StatusSource.API
) -> tuple[Refund, idempotency.StoredResponse]:
    """Create the refund at the PSP (same key every time) and record its answer; commits.

    Completes the idempotency record with the answer, or hands it back (retryable) when the
    PSP could not be reached.
    """
    refund = db.session.get(Refund, refund_id, populate_existing=True)
    if refund.status != RefundStatus.PENDING or refund.psp_refund_id:
        response = _response(refund)  # already submitted (by reconciliation or a twin)
        idempotency.complete(record_id, response)
        db.session.commit()
        return refund, response
    payment = refund.payment
    request = RefundRequest(
        refund_id=refund.public_id,
        payment_id=payment.public_id,
        payment_intent_id=payment.psp_payment_intent_id or "",
        idempotency_key=refund.psp_idempotency_key,
        amount=refund.amount,
        currency=payment.currency,
        reason=refund.reason,
    )
    session_id, psp, tried_before = payment.psp_session_id, refund.psp, refund.psp_attempts > 0
    livemode = payment.livemode
    subscription_id = payment.psp_subscription_id
    renewal_id = payment.id if payment.parent_payment_id is not None else None
    db.session.commit()  # no transaction stays open while the PSP is called

    provider = get_provider(psp, livemode=livemode)
    try:
        if not request.payment_intent_id and renewal_id is not None:
            # A renewal's own charge: invoice events do not carry its intent, so ask the PSP
            # now rather than fall back to the subscription's (the wrong charge).
            intent = learn_payment_intent(renewal_id)
            if intent:
                request = replace(request, payment_intent_id=intent)
        if not request.payment_intent_id:
            intent = _payment_intent(provider, session_id, subscription_id)
            request = replace(request, payment_intent_id=intent)
        psp_refund = None
        if tried_before:
            # An earlier attempt may have reached the PSP and lost its answer. Its idempotency
            # key replays that refund for a day; after that only the refund's metadata finds it.
            psp_refund = provider.find_refund_made_for(request)
        if psp_refund is None:
            psp_refund = provider.create_refund(request)
    except PspRejected as exc:
        return _record_rejection(refund_id, exc, record_id=record_id)
    except PspError as exc:
        return _record_unsubmitted(refund_id, exc, record_id=record_id)
    REFUNDS.labels("submitted").inc()
    return _record_submitted(refund_id, psp_refund, record_id=record_id, source=source)


def _payment_intent(provider, session_id: str | None, subscription_id: str | None) -> str:
    """The payment intent behind a paid payment when no event told PayBridge: the session's,
    or for a subscription's first payment (a subscription-mode session has none) the intent of
    the invoice that the checkout created."""
    session = provider.retrieve_checkout_session(session_id) if session_id else None
    if session is not None and session.payment_intent_id:
        return session.payment_intent_id
    subscription_id = subscription_id or (session.subscription_id if session else None)
    if subscription_id:
        for invoice in provider.list_subscription_invoices(subscription_id, limit=100):
            if invoice.billing_reason == "subscription_create" and invoice.payment_intent_id:
                return invoice.payment_intent_id
    raise PspRejected("the PSP has no payment intent for this payment", code="no_payment_intent")


def _response(refund: Refund, status: int = 201) -> idempotency.StoredResponse:
    return idempotency.StoredResponse(status, refund_to_dict(refund))


def lock_refund(refund_id: int) -> Refund:
    """The refund with a row lock; lock its payment first (always payment, then refund)."""
    return lock_row(Refund, refund_id)


def _locked_pair(refund_id: int) -> tuple[Payment, Refund]:
    payment_id = db.session.scalar(select(Refund.payment_id).where(Refund.id == refund_id))
    payment = lock_payment(payment_id)
    return payment, lock_refund(refund_id)


def _record_submitted(
    refund_id: int, psp_refund: PspRefund, *, record_id: int | None, source: StatusSource
) -> tuple[Refund, idempotency.StoredResponse]:
    payment, refund = _locked_pair(refund_id)
    if refund.psp_refund_id is None:
        refund.psp_refund_id = psp_refund.id
    if not payment.psp_payment_intent_id:  # the next refund needs no lookup
        learn_psp_ids(payment, payment_intent_id=psp_refund.payment_intent_id)
    refund.psp_attempts += 1
    refund.last_psp_error = None
    refund.updated_at = utcnow()
    apply_psp_refund(payment, refund, psp_refund, via=source.value)
    response = _response(refund)
    idempotency.complete(record_id, response)
    db.session.commit()
    log.info(
        "refund %s submitted to the PSP as %s: %s", refund.public_id, psp_refund.id, refund.status
    )
    return refund, response


def _record_rejection(
    refund_id: int, exc: PspRejected, *, record_id: int | None
) -> tuple[Refund, idempotency.StoredResponse]:
    payment, refund = _locked_pair(refund_id)
    refund.psp_attempts += 1
    code = (exc.code or "psp_rejected")[:100]
    if refund.status == RefundStatus.PENDING and refund.psp_refund_id is None:
        refund.last_psp_error = exc.message[:500]
        _finish(payment, refund, RefundStatus.FAILED, failure_reason=code)
    error = PayBridgeError(
        "REFUND_REJECTED",
        f"The payment service provider rejected the refund ({code}): {exc.message}"[:1000],
        details={
            "refund_id": refund.public_id,
            "payment_id": payment.public_id,
            "psp_code": code,
            "status": refund.status,
        },
    )
    response = idempotency.StoredResponse.of_error(error)
    idempotency.complete(record_id, response)
    db.session.commit()
    log.warning("refund %s rejected by the PSP: %s", refund.public_id, code)
    return refund, response


def _record_unsubmitted(
    refund_id: int, exc: PspError, *, record_id: int | None
) -> tuple[Refund, idempotency.StoredResponse]:
    """The PSP could not be reached (or its answer was lost): stays pending, amount reserved."""
    db.session.rollback()
    refund = lock_refund(refund_id)
    refund.psp_attempts += 1
    refund.last_psp_error = f"{type(exc).__name__}: {exc.code or ''} {exc.message}"[:500]
    refund.updated_at = utcnow()
    idempotency.release(record_id)
    db.session.commit()
    REFUNDS.labels("psp_unavailable").inc()
    log.warning(
        "refund %s stays pending unsubmitted: PSP unavailable (%s)", refund.public_id, exc.code
    )
    return refund, _response(refund, 202)


# -- applying the PSP's word --------------------------------------------------------------------


def apply_psp_refund(
    payment: Payment, refund: Refund, psp_refund: PspRefund, *, via: str
) -> str | None:
    """Move a locked refund to what the PSP reports; returns "old -> new" or None (no change).

    pending → succeeded | failed, and succeeded → failed (a PSP can fail a refund it had
    confirmed: the money comes back, so the refunded amount shrinks again). failed is final.
    """
    target = _PSP_TARGETS.get(psp_refund.status)
    before = refund.status_enum
    if target is None or not REFUND_TRANSITIONS.allows(before, target):
        return None
    failure = psp_refund.failure_reason or (
        psp_refund.status if target == RefundStatus.FAILED else None
    )
    _finish(payment, refund, target, failure_reason=failure)
    log.info("refund %s: %s -> %s (via %s)", refund.public_id, before, target, via)
    return f"{before} -> {target}"


def _finish(
    payment: Payment, refund: Refund, target: RefundStatus, *, failure_reason: str | None
) -> None:
    """Record a refund's outcome on the locked pair (the only code that moves a refund); what
    the features do about it (`signals.finished`: the client is notified) joins the transaction.
    """
    before = refund.status_enum
    if not REFUND_TRANSITIONS.allows(before, target):
        raise ValueError(f"refund {refund.public_id} cannot go from {before} to {target}")
    now = utcnow()
    if target == RefundStatus.SUCCEEDED:
        payment.count_refunded(refund.amount)
        REFUNDED_MINOR_UNITS.labels(refund.currency).inc(refund.amount)
    elif before == RefundStatus.SUCCEEDED:
        payment.count_refunded(-refund.amount)
    if target == RefundStatus.FAILED:
        refund.failure_reason = (failure_reason or "unknown")[:100]
    refund.status = target.value
    refund.completed_at = now
    refund.updated_at = now
    payment.updated_at = now
    db.session.flush()
    signals.finished.send(payment, refund)
    REFUNDS.labels(target.value).inc()


def refund_mismatch(refund: Refund, psp_refund: PspRefund) -> str | None:
    """Why this PSP refund cannot be this refund, or None when the facts agree."""
    problems = []
    if refund.psp_refund_id and refund.psp_refund_id != psp_refund.id:
        problems.append(f"the refund's PSP id is {refund.psp_refund_id}, not {psp_refund.id}")
    claimed = psp_refund.metadata.get("paybridge_refund_id")
    if claimed and claimed != refund.public_id:
        problems.append(f"metadata.paybridge_refund_id {claimed!r} is not {refund.public_id}")
    if psp_refund.amount != refund.amount:
        problems.append(f"amount {psp_refund.amount} is not {refund.amount}")
    if psp_refund.currency and psp_refund.currency.upper() != refund.currency.upper():
        problems.append(f"currency {psp_refund.currency} is not {refund.currency}")
    return "; ".join(problems) or None


def submit_pending(refund_id: int) -> tuple[Refund, int]:
    """Submit a refund still without PSP id (reconciliation); returns it and the HTTP-ish code."""
    refund, response = _submit(refund_id, None, source=StatusSource.RECON)
    return refund, response.status


def refunds_of(payment_id: int) -> list[Refund]:
    return list(
        db.session.scalars(
            select(Refund).where(Refund.payment_id == payment_id).order_by(Refund.id)
        )
    )
