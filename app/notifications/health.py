"""An endpoint's health: the run of failed attempts it is in, disabling it when that run has
lasted NOTIFY_ENDPOINT_DISABLE_AFTER_SECONDS (as Stripe disables an endpoint failing for days),
and redelivering what it missed once its merchant enables it again.

The clock is `failing_since` on the endpoint: set by the first failed attempt after a success,
cleared by any successful one. A delivery cycle notes its outcomes here after it recorded them
(`note_outcomes`); the failed attempt that finds the run older than the limit disables the
endpoint. So no periodic job scans endpoints, and a healthy endpoint costs one unlocked read
per cycle, no write. An endpoint with no attempt left to make is not disabled: nothing it
would be sent is waiting.

Disabled for failing: its pending deliveries fail at once (each kept, resendable), the
dashboard shows a banner, the audit log says so (by the system, no user), the log warns and
`paybridge_notification_endpoints_disabled_total` counts it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, bindparam, exists, func, or_, select, update

from app.accounts import audit
from app.common.locks import read_committed
from app.extensions import db
from app.metrics import NOTIFICATION_ENDPOINTS_DISABLED
from app.models import (
    Notification,
    NotificationDelivery,
    NotificationEndpoint,
    utcnow,
)
from app.models.endpoint import ALL_EVENT_TYPES
from app.notifications import delivery
from app.notifications.endpoints import FAILING, disable
from app.notifications.redelivery import BATCH_SIZE, queue_again
from app.notifications.signals import Attempted

log = logging.getLogger(__name__)

Endpoint = NotificationEndpoint
Delivery = NotificationDelivery

_FAILING_SINCE = select(Endpoint.id, Endpoint.failing_since).where(
    Endpoint.id.in_(bindparam("ids", expanding=True))
)
_HEALTHY = (
    update(Endpoint)
    .where(Endpoint.id.in_(bindparam("ids", expanding=True)), Endpoint.failing_since.is_not(None))
    .values(failing_since=None)
)
_START_FAILING = (
    update(Endpoint)
    .where(Endpoint.id == bindparam("endpoint_id"), Endpoint.failing_since.is_(None))
    .values(failing_since=bindparam("since"))
)


def note_outcomes(attempts: Iterable[Attempted]) -> None:  # notifications.attempted
    """Move each endpoint's clock on from a cycle's attempts, and disable those failing for
    longer than the limit.

    Runs after the outcomes are committed, in transactions of its own: a failure here costs
    one cycle's note on the clock, never an outcome."""
    succeeded: set[int] = set()
    first_failure: dict[int, datetime] = {}
    for a in attempts:
        if a.ok:
            succeeded.add(a.endpoint_id)
        elif a.at < first_failure.get(a.endpoint_id, a.at + timedelta(1)):
            first_failure[a.endpoint_id] = a.at
    # An endpoint that answered once in the cycle is reachable: its failures there start no run.
    failed = {i: at for i, at in first_failure.items() if i not in succeeded}
    ids = sorted(succeeded | set(failed))
    if not ids:
        return
    try:
        _note(succeeded, failed, ids)
    except Exception:  # the clock is advisory: the pump goes on
        log.exception("could not note the health of endpoints %s", ids)


def _note(succeeded: set[int], failed: dict[int, datetime], ids: list[int]) -> list[int]:
    with db.engine.connect() as conn:
        since = dict(conn.execute(_FAILING_SINCE, {"ids": ids}).all())
    # Writes only where the state changes: a healthy endpoint's cycles write nothing.
    recovered = [i for i in succeeded if since.get(i) is not None]
    starting = [{"endpoint_id": i, "since": at} for i, at in failed.items() if since.get(i) is None]
    if recovered or starting:
        with db.engine.begin() as conn:
            if recovered:
                conn.execute(_HEALTHY, {"ids": sorted(recovered)})
            if starting:
                conn.execute(_START_FAILING, starting)
    limit = int(current_app.config["NOTIFY_ENDPOINT_DISABLE_AFTER_SECONDS"])
    if not limit:
        return []
    line = utcnow() - timedelta(seconds=limit)
    overdue = [i for i in failed if (began := since.get(i)) is not None and began <= line]
    return [i for i in sorted(overdue) if _disable_if_still_failing(i, line)]


def _disable_if_still_failing(endpoint_id: int, line: datetime) -> bool:
    """Lock the endpoint, look again (a success or the merchant may have come first), disable."""
    try:
        endpoint = db.session.scalar(
            select(Endpoint).where(Endpoint.id == endpoint_id).with_for_update()
        )
        if (
            endpoint is None
            or not endpoint.enabled
            or endpoint.deleted_at is not None
            or endpoint.failing_since is None
            or endpoint.failing_since > line
        ):
            db.session.rollback()
            return False
        failing_since = endpoint.failing_since
        disable(endpoint, FAILING)
        audit.record(
            "endpoint_auto_disable",
            user=None,
            merchant_id=endpoint.merchant_id,
            ip=None,
            user_agent=None,
            target_type="notification_endpoint",
            target_id=endpoint.public_id,
            detail={
                "by": "system",
                "url": endpoint.url,
                "failing_since": failing_since.isoformat(),
                "livemode": endpoint.livemode,
            },
        )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    NOTIFICATION_ENDPOINTS_DISABLED.labels(FAILING).inc()
    log.warning(
        "notification endpoint %s (merchant %s, %s) disabled: every attempt failed since %s",
        endpoint.public_id,
        endpoint.merchant_id,
        endpoint.url,
        failing_since.isoformat(),
    )
    return True


def disabled_for_failing(merchant_id: int | None, livemode: bool) -> list[NotificationEndpoint]:
    """The endpoints of the scope (None: every merchant) and mode disabled for failing: the
    dashboard's banner."""
    query = select(Endpoint).where(
        Endpoint.livemode == livemode,
        Endpoint.enabled.is_(False),
        Endpoint.disabled_reason == FAILING,
        Endpoint.deleted_at.is_(None),
    )
    if merchant_id is not None:
        query = query.where(Endpoint.merchant_id == merchant_id)
    return list(db.session.scalars(query.order_by(Endpoint.id).limit(20)))


# --- what it missed ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Missed:
    """What a disabled endpoint missed: deliveries to it that failed since its run of failures
    began (or since it was disabled), and notifications sent while it was disabled (which got
    no delivery to it)."""

    failed_since: datetime
    disabled_at: datetime


def missed_since(endpoint: NotificationEndpoint) -> Missed | None:
    """The window of what it missed, read before enabling it; None while it is enabled."""
    if endpoint.enabled or endpoint.disabled_at is None:
        return None
    return Missed(endpoint.failing_since or endpoint.disabled_at, endpoint.disabled_at)


def _missed_query(endpoint: NotificationEndpoint, missed: Missed):
    """The ids of the notifications it missed (its merchant's and mode's, of types it receives
    now): its delivery failed within the window, or it has none and came while it was disabled."""
    mine = (
        select(Delivery.id)
        .where(Delivery.notification_id == Notification.id, Delivery.endpoint_id == endpoint.id)
        .correlate(Notification)
    )
    failed = select(Delivery.notification_id).where(
        Delivery.endpoint_id == endpoint.id,
        Delivery.status == delivery.FAILED,
        Delivery.updated_at >= missed.failed_since,
    )
    query = select(Notification.id).where(
        Notification.merchant_id == endpoint.merchant_id,
        Notification.livemode == endpoint.livemode,
        or_(
            Notification.id.in_(failed),
            # Fanned out already while it was disabled (one still new goes to it through the
            # pump's fan-out once it is enabled: making its delivery here would make the pump
            # take it for fanned out and skip every other endpoint).
            and_(
                Notification.created_at >= missed.disabled_at,
                Notification.status != Notification.STATUS_NEW,
                ~exists(mine),
            ),
        ),
    )
    if ALL_EVENT_TYPES not in endpoint.event_types:
        query = query.where(Notification.event_type.in_(list(endpoint.event_types)))
    return query


def count_missed(endpoint: NotificationEndpoint) -> int:
    """How many notifications re-enabling it would redeliver (the confirmation's number)."""
    since = missed_since(endpoint)
    if since is None:
        return 0
    missed = _missed_query(endpoint, since).subquery()
    return db.session.scalar(select(func.count()).select_from(missed)) or 0


def redeliver_missed(endpoint: NotificationEndpoint, since: Missed | None) -> int:
    """Queue again, to this endpoint only, every notification it missed since `since` (from
    `missed_since` before enabling it), in order; how many were queued.

    Commits the enable first, then each batch of BATCH_SIZE (short locks, as redeliver_failed).
    The missed set is read as committed after the enable, not from the caller's snapshot: the
    fan-out reads endpoints in share mode, so every fan-out that ran while it was disabled had
    committed when the enable was flushed (what one fanned out after the request's snapshot
    began looks new in that snapshot, and would never reach this endpoint), and every later
    one sees it enabled and makes its delivery to it itself.

    A failed delivery starts over (fresh schedule, same `webhook-id`); a notification it never
    got (sent while it was disabled) gets its delivery now. Other endpoints are not touched."""
    if since is None or not endpoint.enabled:
        return 0
    db.session.commit()
    rows = read_committed(_missed_query(endpoint, since).order_by(Notification.id))
    ids = [row[0] for row in rows]
    queued = 0
    for start in range(0, len(ids), BATCH_SIZE):
        queued += queue_again(
            endpoint.id, ids[start : start + BATCH_SIZE], moving=(delivery.FAILED,)
        )
        db.session.commit()
    log.info(
        "notification endpoint %s: %d missed notification(s) queued again",
        endpoint.public_id,
        queued,
    )
    return queued
