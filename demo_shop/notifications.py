"""PayBridge's signed notifications: verify, drop repeats, then apply — copy this with paybridge.py.

PayBridge POSTs a notification to the merchant's notify URL whenever a payment becomes final
(`payment.succeeded`, `payment.failed`; a subscription's renewal is a payment of its own with
`parent_payment_id`) and when a refund settles (`refund.succeeded`, `refund.failed`). Shapes and
retries: docs/notifications.md. What a client app does with one:

1. Trust nothing before the Standard Webhooks signature verifies, over the raw body, with the
   merchant's signing secret (the `standardwebhooks` package also refuses stale timestamps).
2. Drop a `webhook-id` seen before: delivery is at least once.
3. Keep only news newer than what it has: a payment's `status_version` only grows.
4. Answer 2xx quickly once the notification is stored; anything else is sent again later.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from demo_shop import orders, payments
from demo_shop.extensions import db
from demo_shop.models import EventPosition, Order, ReceivedNotification

log = logging.getLogger(__name__)

APPLIED = "applied"  # the order changed
STALE = "stale"  # nothing newer than what the order already knew
DUPLICATE = "duplicate"  # this webhook-id was handled before
UNKNOWN_ORDER = "unknown_order"  # about a payment that is none of this shop's orders
IGNORED = "ignored"  # a type the shop does not act on, or a payment that is not the order's


class NotificationRejected(Exception):
    """Not a notification the shop accepts; `code` and `http_status` are the answer."""

    def __init__(self, code: str, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


def verify(body: bytes, headers: Mapping[str, str], secrets: list[str]) -> dict:
    """The notification, if one of `secrets` signed exactly these bytes; NotificationRejected
    otherwise. During a rotation PayBridge signs with both secrets, so either one verifies."""
    if not secrets:
        # The shop's fault, not the sender's: a 5xx makes PayBridge try again once it is set up.
        raise NotificationRejected("NOT_CONFIGURED", "the shop has no signing secret", 503)
    for secret in secrets:
        try:
            Webhook(secret).verify(body, dict(headers), json_parse=False)
            break
        except (WebhookVerificationError, ValueError):  # ValueError: a malformed header
            continue
    else:
        raise NotificationRejected("WEBHOOK_SIGNATURE_INVALID", "the signature does not verify")
    try:
        message = json.loads(body)
    except ValueError:
        raise NotificationRejected("WEBHOOK_PAYLOAD_INVALID", "the body is not JSON") from None
    if not (
        isinstance(message, dict)
        and isinstance(message.get("type"), str)
        and isinstance(message.get("data"), dict)
    ):
        raise NotificationRejected("WEBHOOK_PAYLOAD_INVALID", "the body is not a notification")
    return message


def handle(webhook_id: str, message: dict) -> str:
    """Apply a verified notification once; what came of it. The caller commits."""
    received = ReceivedNotification(
        webhook_id=webhook_id[:100], event_type=message["type"][:50], outcome="received"
    )
    db.session.add(received)
    try:
        db.session.flush()
    except IntegrityError:
        # The unique webhook_id: a repeat, even one that arrived at this very moment, stops here.
        db.session.rollback()
        log.info("notification %s (%s): %s", webhook_id, message["type"], DUPLICATE)
        return DUPLICATE
    kind = message["type"].split(".")[0]
    handler = {"payment": _payment_notification, "refund": _refund_notification}.get(kind)
    order, outcome = handler(message["data"]) if handler else (None, IGNORED)
    received.order_id = order.id if order else None
    received.payment_id = message["data"].get("payment_id") or message["data"].get("id")
    received.outcome = outcome
    remember(webhook_id, message)
    db.session.flush()
    log.info("notification %s (%s): %s", webhook_id, message["type"], outcome)
    return outcome


def remember(event_id: str, message: dict) -> None:
    """Keep the newest event applied (by when it happened): a catch-up after a restart asks
    PayBridge's Events API for what came after it (demo_shop/catch_up.py)."""
    at = _naive_utc(message.get("created") or message.get("timestamp"))
    if at is None:
        return
    position = db.session.get(EventPosition, 1)
    if position is None:
        db.session.add(EventPosition(id=1, event_id=event_id[:40], created_at=at))
    elif at > position.created_at:
        position.event_id, position.created_at = event_id[:40], at


def _naive_utc(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _payment_notification(payment: dict) -> tuple[Order | None, str]:
    if payment.get("parent_payment_id"):
        # A subscription's renewal: its own payment, under the order of the first one.
        order = orders.order_for_payment(payment["parent_payment_id"])
        if order is None:
            return None, UNKNOWN_ORDER
        return order, APPLIED if payments.record_renewal(order, payment) else STALE
    order = _order_by_reference(payment["merchant_reference"])
    if order is None:
        return None, UNKNOWN_ORDER
    if not _is_the_orders(order, payment):
        log.warning("%s is not the payment of %s", payment["id"], order.reference)
        return order, IGNORED
    return order, APPLIED if payments.record_payment(order, payment) else STALE


def _is_the_orders(order: Order, payment: dict) -> bool:
    """The payment the order has (or, before the order knew its id, one for its amount)."""
    if order.payment_id is not None:
        return payment["id"] == order.payment_id
    return (payment["amount"], payment["currency"]) == (order.total_amount, order.currency)


def _refund_notification(refund: dict) -> tuple[Order | None, str]:
    order = orders.order_for_payment(refund["payment_id"])
    if order is None:
        return None, UNKNOWN_ORDER
    payments.record_refund(order, refund)
    return order, APPLIED


def _order_by_reference(reference: str) -> Order | None:
    """The order behind a merchant_reference this shop gave ("order-42")."""
    number = reference.removeprefix("order-")
    if not number.isdigit():
        return None
    return db.session.get(Order, int(number))
