"""Writing outbox rows. Called inside the status change's transaction, never on its own."""

from __future__ import annotations

from app.extensions import db
from app.models import Notification, Payment, utcnow
from app.payments.serialize import payment_to_dict
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
    notification = Notification(
        merchant_id=payment.merchant_id,
        payment_id=payment.id,
        event_type=event_type,
        status_version=payment.status_version,
        next_attempt_at=now,
        created_at=now,
    )
    db.session.add(notification)
    db.session.flush()  # the public id becomes part of the payload
    notification.payload = {
        "id": notification.public_id,
        "type": event_type,
        "timestamp": payment_to_dict(payment)["updated_at"],
        "data": payment_to_dict(payment),
    }
    return notification
