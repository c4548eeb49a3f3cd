"""Writing outbox rows: reactions to a payment's, a declined attempt's, a refund's and a
dispute's changes (connected in `app/wiring.py`), inside the transaction that made the change,
never on their own.

One notification (the event) per change, and nothing else: the request path pays one INSERT.
The worker's pump fans each new notification out (`fanout.py`) to the endpoints that receive
it at that moment, in notification id order. The body is frozen now, as the payment is now: a
retry sends exactly the same bytes."""

from __future__ import annotations

from sqlalchemy import bindparam, insert, select, true

from app.extensions import db
from app.models import (
    Dispute,
    Notification,
    NotificationEndpoint,
    Payment,
    PaymentAttempt,
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
from app.serializers.payment import (
    RecurringLookup,
    attempt_to_dict,
    payment_to_dict,
    refunds_of,
)
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
    _add_payment_notification(payment)


def add_payment_notification(payment: Payment) -> Notification | None:
    """The notification of the locked payment's status as it is now (None: nothing to tell),
    loaded as an ORM object (for callers that go on changing it)."""
    notification_id = _add_payment_notification(payment)
    return None if notification_id is None else db.session.get(Notification, notification_id)


def _add_payment_notification(payment: Payment) -> int | None:
    event_type = PAYMENT_EVENT_TYPES.get(payment.status_enum)
    if event_type is None:
        return None
    data = payment_to_dict(payment, recc=RecurringLookup.load([payment], under_lock=True))
    return _add(payment, event_type, data)


def notify_attempt_failed(payment: Payment, attempt: PaymentAttempt) -> None:
    """`payments.signals.attempt_failed`: queue payment.attempt_failed, in the payment's order.
    `data` is the payment (still open, as now) with the declined `attempt` embedded."""
    data = payment_to_dict(payment, recc=RecurringLookup.load([payment], under_lock=True))
    data["attempt"] = attempt_to_dict(attempt)
    _add(payment, "payment.attempt_failed", data)


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
    _ENDPOINTS.c.enabled == true(),
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


# A Core INSERT on the session's connection: on the create and webhook paths it costs no ORM
# unit of work. Written now, in the change's transaction; the pump fans it out.
_INSERT_NOTIFICATION = insert(Notification.__table__)


def _add(payment: Payment, event_type: str, data: dict) -> int:
    now = utcnow()
    message_id = public_id("msg_")
    result = db.session.connection().execute(
        _INSERT_NOTIFICATION,
        {
            "public_id": message_id,
            "merchant_id": payment.merchant_id,
            "payment_id": payment.id,
            "livemode": payment.livemode,
            "event_type": event_type,
            "status_version": payment.status_version,
            # `livemode` as on Stripe's events: a client app tells test traffic from real money
            # before it reads `data` (which says it too).
            "payload": {
                "id": message_id,
                "type": event_type,
                "livemode": payment.livemode,
                "timestamp": iso(now),
                "data": data,
            },
            "status": Notification.STATUS_NEW,
            "attempt_count": 0,
            "next_attempt_at": None,
            "created_at": now,
            "updated_at": now,
        },
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]  # an INSERT has one
