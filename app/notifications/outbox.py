"""Writing outbox rows. Called inside the status change's transaction, never on its own."""

from __future__ import annotations

from app.extensions import db
from app.models import Notification, Payment, utcnow
from app.models.base import public_id
from app.payments.serialize import RecurringLookup, iso, payment_to_dict, refunds_of
from app.payments.status import PaymentStatus

PAYMENT_EVENT_TYPES = {
    PaymentStatus.SUCCESS: "payment.succeeded",
    PaymentStatus.FAILED: "payment.failed",
}


def add_payment_notification(payment: Payment) -> Notification | None:
    """Queue the notification of a payment's final status, frozen as it is now."""
    event_type = PAYMENT_EVENT_TYPES.get(payment.status_enum)
    if event_type is None:
        return None
    now = utcnow()
    message_id = public_id("msg_")
    data = payment_to_dict(payment, recc=RecurringLookup.load([payment], under_lock=True))
    notification = Notification(
        public_id=message_id,
        merchant_id=payment.merchant_id,
        payment_id=payment.id,
        event_type=event_type,
        status_version=payment.status_version,
        payload={"id": message_id, "type": event_type, "timestamp": iso(now), "data": data},
        next_attempt_at=now,
        created_at=now,
    )
    db.session.add(notification)
    return notification


REFUND_EVENT_TYPES = {"succeeded": "refund.succeeded", "failed": "refund.failed"}


def add_refund_notification(payment: Payment, refund) -> Notification | None:
    """Queue the notification of a refund's outcome (in the payment's order), frozen as now.

    `data` is the refund, with the payment (its `refunded_amount` and `refunds`) embedded.
    """
    from app.refunds.serialize import refund_to_dict

    event_type = REFUND_EVENT_TYPES.get(refund.status)
    if event_type is None:
        return None
    now = utcnow()
    message_id = public_id("msg_")
    data = refund_to_dict(refund, payment_public_id=payment.public_id)
    data["payment"] = payment_to_dict(
        payment, recc=RecurringLookup.load([payment], under_lock=True)
    )
    data["payment"]["refunds"] = refunds_of(payment, under_lock=True)
    notification = Notification(
        public_id=message_id,
        merchant_id=payment.merchant_id,
        payment_id=payment.id,
        event_type=event_type,
        status_version=payment.status_version,
        payload={"id": message_id, "type": event_type, "timestamp": iso(now), "data": data},
        next_attempt_at=now,
        created_at=now,
    )
    db.session.add(notification)
    return notification
