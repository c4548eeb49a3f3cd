"""Sending notifications again: one event (to every endpoint that receives it, or to one), one
delivery, or every failed delivery of an endpoint in a time window. The one place for the rule
that the dashboard, the API and `flask notifications resend` share.

A redelivery moves deliveries back to pending with a fresh retry schedule; the pump sends them
with the event's body and `webhook-id` unchanged (a client that already has it drops the copy),
and in order per (endpoint, payment), since it takes a payment's oldest pending delivery first.
Deliveries are only ever moved from delivered or failed (never one still pending), guarded in the
UPDATE itself, so a second click or a concurrent one queues nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, insert, select, update

from app.common.locks import lock_row
from app.errors import PayBridgeError
from app.extensions import db
from app.models import Notification, NotificationDelivery, NotificationEndpoint, utcnow
from app.notifications.delivery import lock_notifications, resummarise
from app.notifications.outbox import receiving_endpoints

log = logging.getLogger(__name__)

Delivery = NotificationDelivery
PENDING = Delivery.STATUS_PENDING
DELIVERED = Delivery.STATUS_DELIVERED
FAILED = Delivery.STATUS_FAILED
# Bulk redelivery moves this many deliveries per transaction: short locks, bounded memory.
BATCH_SIZE = 500

# A notification's deliveries as committed now (locked): what the pump's fan-out made counts.
_DELIVERIES_OF = (
    select(Delivery)
    .where(Delivery.notification_id == bindparam("id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)


def queue_again(
    endpoint_id: int,
    notification_ids: Iterable[int],
    *,
    moving: tuple[str, ...] = (DELIVERED, FAILED),
) -> int:
    """Queue these notifications to this endpoint again, due now with a fresh schedule: the
    one rule every redelivery uses. A delivery whose status is in `moving` goes back to
    pending (the UPDATE guards it: one pending, or moved by a concurrent call, is left alone);
    a notification the endpoint never had gets its delivery. Notifications are locked first,
    as every writer of both does; the caller commits. How many were queued."""
    ids = lock_notifications(notification_ids)
    if not ids:
        return 0
    now = utcnow()
    mine = (Delivery.endpoint_id == endpoint_id, Delivery.notification_id.in_(ids))
    moved = (
        db.session.connection()
        .execute(
            update(Delivery)
            .where(*mine, Delivery.status.in_(moving))
            .values(
                status=PENDING,
                attempt_count=0,
                last_error=None,
                delivered_at=None,
                next_attempt_at=now,
                # No claim of before holds it any more: an outcome still to come from one
                # (a POST out when its endpoint was disabled) must not move it on.
                last_attempt_at=None,
                updated_at=now,
            )
        )
        .rowcount
    )
    # As committed now (locking read), not as this transaction first saw them.
    have = set(db.session.scalars(select(Delivery.notification_id).where(*mine).with_for_update()))
    missing = [i for i in ids if i not in have]
    if missing:
        payments = dict(
            db.session.execute(
                select(Notification.id, Notification.payment_id).where(Notification.id.in_(missing))
            ).all()
        )
        db.session.execute(
            insert(Delivery),
            [
                {
                    "notification_id": i,
                    "endpoint_id": endpoint_id,
                    "payment_id": payments[i],
                    "status": PENDING,
                    "attempt_count": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in missing
            ],
        )
    resummarise(ids)
    return moved + len(missing)


def redeliver(notification_id: int, endpoint: NotificationEndpoint | None = None) -> Notification:
    """Send a notification again to `endpoint`, or to every enabled endpoint of its merchant and
    mode that receives its type now (one added or subscribed since gets its first delivery).

    Refused while a delivery it would redo is still pending, and for a disabled endpoint. The
    caller commits; the pump sends it from then on."""
    # Locking reads, not the transaction's snapshot: the pump may have fanned it out since this
    # request first read the database, and a delivery it made must not be made twice.
    notification = lock_row(Notification, notification_id)
    if notification is None:
        raise PayBridgeError("NOTIFICATION_NOT_FOUND", f"No notification {notification_id}.")
    endpoint_ids = _targets(notification, endpoint)
    existing = {
        d.endpoint_id: d for d in db.session.scalars(_DELIVERIES_OF, {"id": notification_id})
    }
    # Not fanned out yet: the pump will send it to every endpoint that receives it.
    not_fanned_out = notification.status == Notification.STATUS_NEW
    if not_fanned_out or any(existing[e].status == PENDING for e in endpoint_ids if e in existing):
        raise PayBridgeError(
            "NOTIFICATION_PENDING",
            f"Notification {notification.public_id} is still being delivered"
            + (f" to {endpoint.url}." if endpoint else "."),
        )
    for endpoint_id in endpoint_ids:
        queue_again(endpoint_id, [notification_id])
    for stale in existing.values():  # moved by a Core UPDATE: read again when next used
        db.session.expire(stale)
    db.session.refresh(notification)
    log.info("notification %s queued for redelivery", notification.public_id)
    return notification


def _targets(notification: Notification, endpoint: NotificationEndpoint | None) -> list[int]:
    mode = "live" if notification.livemode else "test"
    if endpoint is None:
        ids = receiving_endpoints(
            notification.merchant_id, notification.livemode, notification.event_type
        )
        if not ids:
            raise PayBridgeError(
                "NO_NOTIFICATION_ENDPOINT",
                f"No enabled notification endpoint receives {notification.event_type} "
                f"({mode} mode): add or enable one, then redeliver.",
            )
        return ids
    if (endpoint.merchant_id, endpoint.livemode) != (
        notification.merchant_id,
        notification.livemode,
    ) or endpoint.deleted_at is not None:
        raise PayBridgeError("NOTIFICATION_ENDPOINT_NOT_FOUND", param="endpoint")
    _check_enabled(endpoint)
    received = any(d.endpoint_id == endpoint.id for d in notification.deliveries)
    if not received and not endpoint.receives(notification.event_type):
        raise PayBridgeError(
            "NO_NOTIFICATION_ENDPOINT",
            f"{endpoint.url} does not receive {notification.event_type}: subscribe it first.",
            param="endpoint",
        )
    return [endpoint.id]


def _check_enabled(endpoint: NotificationEndpoint) -> None:
    if not endpoint.enabled:
        raise PayBridgeError(
            "NOTIFICATION_ENDPOINT_DISABLED",
            f"{endpoint.url} is disabled: enable it, then redeliver.",
        )


def redeliver_delivery(delivery_id: int) -> Delivery:
    """Send one delivery (delivered or failed) again to its endpoint; the caller commits."""
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None:
        raise PayBridgeError("NOTIFICATION_NOT_FOUND", f"No delivery {delivery_id}.")
    redeliver(delivery.notification_id, delivery.endpoint)
    db.session.refresh(delivery)
    return delivery


# --- every failed delivery of an endpoint in a time window --------------------------------------


@dataclass(frozen=True)
class FailedWindow:
    """An endpoint's failed deliveries of the events created in [created_gte, created_lte]
    (either end open), up to delivery `upto_id`: what a confirmation counted, so what fails
    after it was shown is not sent unasked."""

    endpoint_id: int
    created_gte: datetime | None = None
    created_lte: datetime | None = None
    upto_id: int | None = None


def _failed_in(window: FailedWindow, *columns):
    stmt = (
        select(*columns)
        .join(Notification, Notification.id == Delivery.notification_id)
        .where(Delivery.endpoint_id == window.endpoint_id, Delivery.status == FAILED)
    )
    if window.created_gte is not None:
        stmt = stmt.where(Notification.created_at >= window.created_gte)
    if window.created_lte is not None:
        stmt = stmt.where(Notification.created_at <= window.created_lte)
    if window.upto_id is not None:
        stmt = stmt.where(Delivery.id <= window.upto_id)
    return stmt


def count_failed(window: FailedWindow) -> tuple[int, int | None]:
    """How many deliveries the window holds now, and the newest one's id (the `upto_id` that
    makes a later redelivery send exactly those); read from the (endpoint, status, id) index."""
    count, newest = db.session.execute(
        _failed_in(window, func.count(Delivery.id), func.max(Delivery.id))
    ).one()
    return int(count or 0), newest


def redeliver_failed(endpoint: NotificationEndpoint, window: FailedWindow) -> int:
    """Queue every failed delivery of the window again, BATCH_SIZE per committed transaction
    (so a large window never sits in memory or holds locks long); how many were queued. A
    delivery queued by an earlier (or concurrent) call is no longer failed and is skipped."""
    _check_enabled(endpoint)
    queued = 0
    for batch in _failed_batches(window):
        queued += queue_again(window.endpoint_id, [n for _, n in batch], moving=(FAILED,))
        db.session.commit()
    log.info("%d failed deliveries to endpoint %s queued again", queued, endpoint.public_id)
    return queued


def _failed_batches(window: FailedWindow) -> Iterator[list[tuple[int, int]]]:
    after = 0
    while True:
        stmt = _failed_in(window, Delivery.id, Delivery.notification_id).where(Delivery.id > after)
        rows = db.session.execute(stmt.order_by(Delivery.id).limit(BATCH_SIZE)).all()
        if not rows:
            return
        after = rows[-1][0]
        yield [(row[0], row[1]) for row in rows]
