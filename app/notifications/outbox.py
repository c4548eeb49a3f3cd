"""Writing outbox rows: reactions to a payment's, a refund's and a dispute's changes (connected in
`app/wiring.py`), inside the transaction that made the change, never on their own.

One notification (the event) per change, and one delivery of it to each enabled endpoint of
the merchant and mode that receives its type, as the endpoints are at this moment.
The body is frozen now, as the payment is now: a retry sends exactly the same bytes."""

from __future__ import annotations

from sqlalchemy import bindparam, select

from app.extensions import db
from app.models import (
    Dispute,
    Notification,
    NotificationDelivery,
    NotificationEndpoint,
    Payment,
    PaymentStatus,
    PaymentStatusChange,
    Refund,
    RefundStatus,
    Subscription,
    iso,
    utcnow,
)
from app.models.base import public_id
from app.models.endpoint import ALL_EVENT_TYPES
from app.serializers.dispute import dispute_to_dict
from app.serializers.payment import RecurringLookup, payment_to_dict, refunds_of
from app.serializers.refund import refund_to_dict
from app.serializers.subscription import subscription_to_dict

PAYMENT_EVENT_TYPES = {
    PaymentStatus.INITIATED: "payment.initiated",
    PaymentStatus.PENDING: "payment.pending",
    PaymentStatus.SUCCESS: "payment.succeeded",
    PaymentStatus.FAILED: "payment.failed",
}
REFUND_EVENT_TYPES = {
    RefundStatus.SUCCEEDED: "refund.succeeded",
    RefundStatus.FAILED: "refund.failed",
}


def notify_payment(payment: Payment, change: PaymentStatusChange) -> None:
    """`payments.signals.status_changed`: queue the notification of its new status."""
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


# The endpoints a new notification may go to (its type is checked in Python: the list is short).
# A Core statement on the session's connection: on the create and webhook paths, where it runs
# in the transaction of the change, it costs no ORM compilation and no autoflush.
_ENDPOINTS = NotificationEndpoint.__table__
_RECEIVING_ENDPOINTS = select(_ENDPOINTS.c.id, _ENDPOINTS.c.event_types).where(
    _ENDPOINTS.c.merchant_id == bindparam("merchant_id"),
    _ENDPOINTS.c.livemode == bindparam("livemode"),
    _ENDPOINTS.c.enabled.is_(True),
    _ENDPOINTS.c.deleted_at.is_(None),
)


def receiving_endpoints(merchant_id: int, livemode: bool, event_type: str) -> list[int]:
    """The ids of the merchant's enabled endpoints of that mode that receive `event_type`."""
    rows = db.session.connection().execute(
        _RECEIVING_ENDPOINTS, {"merchant_id": merchant_id, "livemode": livemode}
    )
    return [
        row.id
        for row in rows
        if ALL_EVENT_TYPES in row.event_types or event_type in row.event_types
    ]


def notify_subscription(subscription: Subscription, payment: Payment, event_type: str) -> None:
    """`subscriptions.signals.changed`: queue subscription.created / .renewed / .past_due /
    .canceled, in `payment`'s order. `data` is the subscription (as the API shows it)."""
    _add(payment, event_type, subscription_to_dict(subscription))


def _add(payment: Payment, event_type: str, data: dict) -> Notification:
    now = utcnow()
    message_id = public_id("msg_")
    endpoint_ids = receiving_endpoints(payment.merchant_id, payment.livemode, event_type)
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
        status=Notification.STATUS_PENDING if endpoint_ids else Notification.STATUS_UNROUTED,
        next_attempt_at=now if endpoint_ids else None,
        created_at=now,
        deliveries=[
            NotificationDelivery(
                endpoint_id=endpoint_id, payment_id=payment.id, next_attempt_at=now, created_at=now
            )
            for endpoint_id in endpoint_ids
        ],
    )
    db.session.add(notification)
    return notification
