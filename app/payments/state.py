"""The only code that changes a payment's status, or the PSP ids it learns along the way.

Callers lock the row first (`lock_payment`), call `transition`, and commit: the status, its
history row and what the features do about it (`signals`: a subscription follows its first
payment, the client is notified) land in one transaction.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import NoResultFound

from app import metrics
from app.common.locks import lock_row
from app.errors import PayBridgeError
from app.extensions import db
from app.models import (
    Payment,
    PaymentStatus,
    PaymentStatusChange,
    PaymentType,
    StatusSource,
    utcnow,
)
from app.models.payment import PAYMENT_TRANSITIONS
from app.payments import failure_reasons, signals

log = logging.getLogger(__name__)


class IllegalTransition(PayBridgeError):
    """A move the transition table does not allow, e.g. out of a final status."""

    def __init__(self, current: PaymentStatus, target: PaymentStatus) -> None:
        self.current = current
        self.target = target
        code = "PAYMENT_ALREADY_FINAL" if current.is_final else "ILLEGAL_TRANSITION"
        super().__init__(code, f"A payment cannot go from {current} to {target}.")


def lock_payment(payment_id: int) -> Payment:
    """The payment with a row lock (SELECT … FOR UPDATE) held until the caller commits, read
    fresh: payments are never deleted, so its id always names one."""
    payment = lock_row(Payment, payment_id)
    if payment is None:
        raise NoResultFound(f"no payment {payment_id}")
    return payment


def lock_payment_by_public_id(public_id: str) -> Payment | None:
    """`lock_payment` by the payment's public id; None when no payment has it."""
    return lock_row(Payment, public_id, column="public_id")


def record_creation(payment: Payment, *, source: StatusSource = StatusSource.API) -> None:
    """The first history row of a new payment (None → CREATED)."""
    payment.status = PaymentStatus.CREATED.value
    payment.status_version = 1
    db.session.add(
        PaymentStatusChange(
            payment=payment,
            from_status=None,
            to_status=PaymentStatus.CREATED.value,
            status_version=1,
            source=source.value,
            reason="created",
        )
    )


def transition(
    payment: Payment,
    target: PaymentStatus,
    *,
    source: StatusSource,
    reason: str | None = None,
    psp_event_id: str | None = None,
    failure_code: str | None = None,
    failure_message: str | None = None,
    failure_reason: str | None = None,
) -> PaymentStatusChange:
    """Move `payment` to `target`, or raise IllegalTransition. The caller holds the row lock.

    A move to FAILED records why as a `failure_reasons` code; a caller that names none gets
    `expired` for an expiry and `rejected_by_psp` otherwise."""
    current = payment.status_enum
    if not PAYMENT_TRANSITIONS.allows(current, target):
        raise IllegalTransition(current, target)
    now = utcnow()
    payment.status = target.value
    payment.status_version += 1
    payment.updated_at = now
    if target == PaymentStatus.FAILED:
        payment.failure_code = failure_code or payment.failure_code
        payment.failure_message = failure_message or payment.failure_message
        payment.failure_reason = failure_reason or failure_reasons.default_for(payment.failure_code)
    if target.is_final:
        payment.finalized_at = now
    change = PaymentStatusChange(
        payment=payment,
        from_status=current.value,
        to_status=target.value,
        status_version=payment.status_version,
        source=source.value,
        reason=(reason or "")[:500] or None,
        psp_event_id=psp_event_id,
        created_at=now,
    )
    db.session.add(change)
    db.session.flush()
    signals.status_changed.send(payment, change)
    metrics.PAYMENT_TRANSITIONS.labels(current.value, target.value, source.value).inc()
    log.info(
        "payment %s: %s -> %s (source=%s, reason=%s)",
        payment.public_id,
        current,
        target,
        source,
        reason,
    )
    return change


def learn_psp_ids(
    payment: Payment,
    *,
    payment_intent_id: str | None = None,
    subscription_id: str | None = None,
) -> None:
    """Remember what the PSP names this locked payment's money by; the caller commits.

    A payment's PSP subscription, once known, never changes; the first RECC payment that
    learns it is announced (`signals.subscription_learned`): its subscription starts here.
    """
    if payment_intent_id and payment.psp_payment_intent_id != payment_intent_id:
        payment.psp_payment_intent_id = payment_intent_id
    if subscription_id and not payment.psp_subscription_id:
        payment.psp_subscription_id = subscription_id
        if payment.payment_type == PaymentType.RECC and payment.parent_payment_id is None:
            signals.subscription_learned.send(payment)
