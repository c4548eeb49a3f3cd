"""The shop's notify endpoint logic: verify PayBridge's Standard Webhooks signature, then apply.

This is exactly what any client app of PayBridge does: trust nothing that is not signed with
the merchant's secret, drop a webhook-id seen before, drop a status_version older than the one
applied, and only then mark the order PAID or FAILED.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.extensions import db
from app.models import utcnow
from app.shop.models import Order, OrderStatus, ReceivedNotification

log = logging.getLogger(__name__)

PAYMENT_STATUS_TO_ORDER = {"SUCCESS": OrderStatus.PAID, "FAILED": OrderStatus.FAILED}


class NotificationRejected(Exception):
    """The request is not a notification the shop can accept; `code` is the error to answer."""

    def __init__(self, message: str, code: str = "WEBHOOK_SIGNATURE_INVALID") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class NotifyResult:
    outcome: str
    order_id: int | None = None


def verify(body: bytes, headers: dict[str, str], secrets: list[str]) -> dict:
    """The notification's JSON if one of `secrets` signed it; NotificationRejected otherwise."""
    if not secrets:
        # Not the sender's fault: a 5xx makes PayBridge retry once the shop is set up.
        raise NotificationRejected("the shop has no signing secret", "SERVICE_UNAVAILABLE")
    for secret in secrets:
        try:
            Webhook(secret).verify(body, headers, json_parse=False)
            break
        except (WebhookVerificationError, ValueError):  # ValueError: malformed signature header
            continue
    else:
        raise NotificationRejected("signature does not verify")
    try:
        payload = json.loads(body)
    except ValueError:
        raise NotificationRejected("body is not JSON", "WEBHOOK_PAYLOAD_INVALID") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise NotificationRejected(
            "body is not a PayBridge notification", "WEBHOOK_PAYLOAD_INVALID"
        )
    return payload


def _order_for(data: dict) -> Order | None:
    reference = data.get("merchant_reference")
    if not isinstance(reference, str) or not reference.startswith("order-"):
        return None
    order_id = reference.removeprefix("order-")
    if not order_id.isdigit():
        return None
    return db.session.execute(
        select(Order)
        .where(Order.id == int(order_id))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def apply(webhook_id: str, payload: dict) -> NotifyResult:
    """Apply a verified notification once; the caller commits."""
    if db.session.execute(
        select(ReceivedNotification.id).where(ReceivedNotification.webhook_id == webhook_id)
    ).first():
        return NotifyResult("duplicate")
    event_type = str(payload.get("type") or "")[:50]
    data = payload["data"]
    version = data.get("status_version")
    version = version if isinstance(version, int) else None
    order = _order_for(data)
    payment_id = data.get("id") if isinstance(data.get("id"), str) else None
    outcome = _apply_to_order(order, data, version, payment_id)
    db.session.add(
        ReceivedNotification(
            webhook_id=webhook_id[:100],
            event_type=event_type,
            order_id=order.id if order else None,
            payment_id=payment_id[:32] if payment_id else None,
            status_version=version,
            outcome=outcome,
        )
    )
    try:
        db.session.flush()
    except IntegrityError:
        # The same webhook-id, delivered twice at once: the other request applied it.
        db.session.rollback()
        return NotifyResult("duplicate")
    log.info(
        "notification %s (%s) for %s: %s",
        webhook_id,
        event_type,
        order.reference if order else "no order",
        outcome,
    )
    return NotifyResult(outcome, order.id if order else None)


def _apply_to_order(order: Order | None, data: dict, version: int | None, payment_id) -> str:
    if order is None:
        return ReceivedNotification.OUTCOME_UNKNOWN_ORDER
    if order.payment_id and payment_id and order.payment_id != payment_id:
        log.warning("notification for %s names payment %s, not %s", order.reference,
                    payment_id, order.payment_id)  # fmt: skip
        return ReceivedNotification.OUTCOME_IGNORED
    if version is None or version <= order.payment_status_version:
        return ReceivedNotification.OUTCOME_STALE
    target = PAYMENT_STATUS_TO_ORDER.get(str(data.get("status")))
    order.payment_status_version = version
    order.payment_id = order.payment_id or payment_id
    if target is None or order.is_final:
        # Not final yet (or a refund notification on a paid order): note the version only.
        return ReceivedNotification.OUTCOME_IGNORED
    order.status = target
    order.updated_at = utcnow()
    if target == OrderStatus.PAID:
        order.paid_at = utcnow()
    else:
        order.failure_message = (data.get("failure_message") or "The payment failed.")[:500]
    return ReceivedNotification.OUTCOME_APPLIED
