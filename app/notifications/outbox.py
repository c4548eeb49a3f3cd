"""Writing outbox rows: reactions to a payment's, a refund's and a dispute's changes (connected in
`app/wiring.py`), inside the transaction that made the change, never on their own.

The body is frozen now, as the payment is now: a retry sends exactly the same bytes."""

from __future__ import annotations

from app.extensions import db
from app.models import (
    Dispute,
    Notification,
    Payment,
    PaymentStatus,
    PaymentStatusChange,
    Refund,
    RefundStatus,
    iso,
    utcnow,
)
from app.models.base import public_id
from app.serializers.dispute import dispute_to_dict
from app.serializers.payment import RecurringLookup, payment_to_dict, refunds_of
from app.serializers.refund import refund_to_dict

PAYMENT_EVENT_TYPES = {
    PaymentStatus.SUCCESS: "payment.succeeded",
    PaymentStatus.FAILED: "payment.failed",
}
REFUND_EVENT_TYPES = {
    RefundStatus.SUCCEEDED: "refund.succeeded",
    RefundStatus.FAILED: "refund.failed",
}


def notify_payment(payment: Payment, change: PaymentStatusChange) -> None:
    """`payments.signals.status_changed`: queue the notification of a final status."""
    add_payment_notification(payment)


def add_payment_notification(payment: Payment) -> Notification | None:
    """The notification of the locked payment's status as it is now (None: nothing to tell)."""
    event_type = PAYMENT_EVENT_TYPES.get(payment.status_enum)
    if event_type is None:
        return None
    data = payment_to_dict(payment, recc=RecurringLookup.load([payment], under_lock=True))
    return _add(payment, event_type, data)


def notify_refund(payment: Payment, refund: Refund) -> None:
    """`refunds.signals.finished`: queue the notification of a refund's outcome, in its
    payment's order. `data` is the refund, with the payment (its `refunded_amount` and
    `refunds`) embedded."""
    event_type = REFUND_EVENT_TYPES.get(refund.status)
    if event_type is None:
        return
    data = refund_to_dict(refund, payment_public_id=payment.public_id, livemode=payment.livemode)
    data["payment"] = payment_to_dict(
        payment, recc=RecurringLookup.load([payment], under_lock=True)
    )
    data["payment"]["refunds"] = refunds_of(payment, under_lock=True)
    _add(payment, event_type, data)


def notify_dispute(payment: Payment, dispute: Dispute, event_type: str) -> None:
    """`disputes.signals.changed`: queue dispute.created / .updated / .closed, in its
    payment's order. `data` is the dispute, with its payment embedded."""
    data = dispute_to_dict(dispute, payment_public_id=payment.public_id)
    data["payment"] = payment_to_dict(
        payment, recc=RecurringLookup.load([payment], under_lock=True)
    )
    _add(payment, event_type, data)


def _add(payment: Payment, event_type: str, data: dict) -> Notification:
    now = utcnow()
    message_id = public_id("msg_")
    notification = Notification(
        public_id=message_id,
        merchant_id=payment.merchant_id,
        payment_id=payment.id,
        livemode=payment.livemode,
        event_type=event_type,
        status_version=payment.status_version,
        # `livemode` as on Stripe's events: a client app tells test traffic from real money
        # before it reads `data` (which says it too).
        payload={
            "id": message_id,
            "type": event_type,
            "livemode": payment.livemode,
            "timestamp": iso(now),
            "data": data,
        },
        next_attempt_at=now,
        created_at=now,
    )
    db.session.add(notification)
    return notification
