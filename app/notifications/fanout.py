"""Fanning new notifications out to the endpoints that receive them: the worker's side of the
outbox, kept out of the request path (which writes only the notification, `outbox.py`).

`fan_out` takes the oldest committed new notifications in id order and locks them by primary
key (FOR UPDATE, not SKIP LOCKED: a second pump waits the few milliseconds and then finds them
done, so fan-outs run one after another and each (endpoint, payment)'s deliveries get ids in
its notifications' order, which is the order the claim keeps). One still being written is not
waited for: its request's transaction holds its payment locked, so no later notification of
that payment can be committed before it, and it comes in a later fan-out. (Subscription events
are written under the subscription's lock, with its first payment's id: two of them written
concurrently are delivered in commit order.) In the same
transaction it writes one delivery per enabled endpoint of the merchant and mode that receives
the type, as the endpoints are now, and moves each notification on: pending, or unrouted when
no endpoint receives it. A
worker that dies mid-fan-out rolls it all back; the notifications stay new and the next
fan-out takes them: none is lost, none fanned out twice.
"""

from __future__ import annotations

import functools

from sqlalchemy import Connection, bindparam, insert, select, true, update

from app.common.locks import retry_lock_conflicts, row_locks_only_connection
from app.models import Notification, NotificationDelivery, NotificationEndpoint, utcnow
from app.models.base import index_hint
from app.models.endpoint import ALL_EVENT_TYPES

# How many notifications one fan-out transaction takes.
FANOUT_BATCH = 500

NEW = Notification.STATUS_NEW
# New notifications wait with no time of their own (NULL), so the status index lists them in
# id order and the batch's LIMIT stops the scan.
_IS_NEW = (Notification.status == NEW, Notification.next_attempt_at.is_(None))
ANY_NEW = select(Notification.id).where(*_IS_NEW).limit(1)


@functools.cache
def _new_ids(limit: int):
    """The oldest new notifications as committed now (a plain read: one still being written,
    locked by its request's transaction, is not waited for; it comes in a later fan-out)."""
    return select(Notification.id).where(*_IS_NEW).order_by(Notification.id).limit(limit)


# Those of them still new, locked by primary key (FOR UPDATE, not SKIP LOCKED: another pump's
# fan-out of them is waited for, then they are no longer new).
_LOCK_NEW = (
    select(
        Notification.id,
        Notification.merchant_id,
        Notification.livemode,
        Notification.event_type,
        Notification.payment_id,
    )
    .where(Notification.id.in_(bindparam("ids", expanding=True)), *_IS_NEW)
    .order_by(Notification.id)
    .with_for_update()
)
# By key only: read through the status index, the locking read could meet (and wait on) a
# notification still being written.
_LOCK_NEW = index_hint(_LOCK_NEW, Notification, "FORCE INDEX (PRIMARY)")


_E = NotificationEndpoint.__table__
# Read in share mode: a merchant disabling an endpoint (whose pending deliveries then fail)
# waits for a fan-out under way to commit, and a later fan-out sees it disabled; so no delivery
# is made to an endpoint after it was disabled (a POST already claimed still finishes).
_ENDPOINTS_OF = (
    select(_E.c.id, _E.c.merchant_id, _E.c.livemode, _E.c.event_types)
    .where(
        _E.c.merchant_id.in_(bindparam("merchant_ids", expanding=True)),
        _E.c.enabled == true(),
        _E.c.deleted_at.is_(None),
    )
    .with_for_update(read=True)
)
_ADD_DELIVERIES = insert(NotificationDelivery.__table__)
_MOVE_ON = (
    update(Notification)
    .where(Notification.id.in_(bindparam("ids", expanding=True)), *_IS_NEW)
    .values(
        status=bindparam("new_status"),
        next_attempt_at=bindparam("due"),
        updated_at=bindparam("now"),
    )
)


def fan_out(limit: int = FANOUT_BATCH) -> int:
    """Fan out up to `limit` new notifications, oldest first, in one transaction; how many."""

    def run() -> int:
        with row_locks_only_connection() as conn:
            # A lock-free look first: the pump asks before every claim and mostly finds nothing
            # new, which must not queue it behind another pump's fan-out lock.
            if conn.execute(ANY_NEW).first() is None:
                return 0
            conn.rollback()
            with conn.begin():
                return _fan_out(conn, limit)

    return retry_lock_conflicts(run, what="notification fan-out")


def _fan_out(conn: Connection, limit: int) -> int:
    """One fan-out transaction's work, on `conn` (the caller begins and commits)."""
    ids = conn.execute(_new_ids(limit)).scalars().all()
    if not ids:
        return 0
    new = conn.execute(_LOCK_NEW, {"ids": ids}).all()
    if not new:
        return 0
    now = utcnow()
    endpoints: dict[tuple[int, bool], list] = {}
    for e in conn.execute(_ENDPOINTS_OF, {"merchant_ids": sorted({n.merchant_id for n in new})}):
        endpoints.setdefault((e.merchant_id, bool(e.livemode)), []).append(e)
    deliveries: list[dict] = []
    routed: list[int] = []
    unrouted: list[int] = []
    for n in new:  # in id order: the deliveries' ids keep it
        receiving = [
            e.id
            for e in endpoints.get((n.merchant_id, bool(n.livemode)), ())
            if ALL_EVENT_TYPES in e.event_types or n.event_type in e.event_types
        ]
        (routed if receiving else unrouted).append(n.id)
        deliveries += [
            {
                "notification_id": n.id,
                "endpoint_id": endpoint_id,
                "payment_id": n.payment_id,
                "status": NotificationDelivery.STATUS_PENDING,
                "attempt_count": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for endpoint_id in sorted(receiving)
        ]
    if deliveries:
        conn.execute(_ADD_DELIVERIES, deliveries)
    for ids, status, due in (
        (routed, Notification.STATUS_PENDING, now),
        (unrouted, Notification.STATUS_UNROUTED, None),
    ):
        if ids:
            conn.execute(_MOVE_ON, {"ids": ids, "new_status": status, "due": due, "now": now})
    return len(new)


def fan_out_all() -> int:
    """Fan out every new notification (batch after batch); how many."""
    total = 0
    while done := fan_out():
        total += done
        if done < FANOUT_BATCH:
            break
    return total
