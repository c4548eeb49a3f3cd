"""The delivery log: every delivery of a merchant's events to its endpoints, one mode at a time,
newest event first, filtered by endpoint, event type, status and time.

A page is read as events: the merchant's notifications of the mode (0021's
ix_notifications_merchant_mode_[type_]created, or for an operator across merchants 0025's
ix_notifications_livemode_created), keyset-paged on (created_at, id), each kept when one of its
deliveries matches (a semi-join on the delivery's notification index); then the matching
deliveries of that page's events, one row each. An event whose deliveries the pump has not made
yet shows up once it has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, exists, or_, select
from sqlalchemy.orm import selectinload

from app.common.tenancy import scoped
from app.extensions import db
from app.models import Notification, NotificationAttempt, NotificationDelivery, NotificationEndpoint
from app.reporting.transactions import Page, keyset_page

CURSOR_SCOPE = "dashboard.deliveries"
Delivery = NotificationDelivery

# What the log calls a delivery's state: pending splits into never tried and retrying.
STATUSES = ("pending", "retrying", "delivered", "failed")


def status_of(delivery: Delivery) -> str:
    """The log's word for a delivery's state (one of STATUSES)."""
    if delivery.status == Delivery.STATUS_PENDING and delivery.attempt_count:
        return "retrying"
    return delivery.status


def status_clause(status: str) -> ColumnElement[bool]:
    """The deliveries in a STATUSES state (the one rule status_of reads the other way)."""
    if status == "pending":
        return and_(Delivery.status == Delivery.STATUS_PENDING, Delivery.attempt_count == 0)
    if status == "retrying":
        return and_(Delivery.status == Delivery.STATUS_PENDING, Delivery.attempt_count > 0)
    return Delivery.status == status


def failing_now(failed_since: datetime) -> ColumnElement[bool]:
    """The deliveries failing now (the overview's figure): retrying after a failed attempt, or
    given up since `failed_since` to an endpoint not deleted. Older failures and a deleted
    endpoint's (which cannot be redelivered) stay in the log, but would keep the figure up for
    ever once the client app is fixed."""
    endpoint_kept = (
        exists()
        .where(
            NotificationEndpoint.id == Delivery.endpoint_id,
            NotificationEndpoint.deleted_at.is_(None),
        )
        .correlate(Delivery)
    )
    gave_up_lately = and_(status_clause("failed"), Delivery.updated_at >= failed_since)
    return or_(status_clause("retrying"), and_(gave_up_lately, endpoint_kept)).self_group()


@dataclass
class DeliveryFilter:
    """What the person asked for; None means "any"."""

    merchant_id: int | None = None  # the tenancy scope: always set for a merchant user
    livemode: bool = False
    endpoint_id: int | None = None
    event_type: str | None = None
    status: str | None = None  # one of STATUSES
    event_public_id: str | None = None  # msg_…
    created_gte: datetime | None = None
    created_lte: datetime | None = None


@dataclass
class DeliveryPage:
    rows: list[Delivery]  # each with .notification and .endpoint loaded, newest event first
    older: str | None
    newer: str | None


def _matching(f: DeliveryFilter) -> list[ColumnElement[bool]]:
    clauses = []
    if f.endpoint_id is not None:
        clauses.append(Delivery.endpoint_id == f.endpoint_id)
    if f.status:
        clauses.append(status_clause(f.status))
    return clauses


def events_with_deliveries(f: DeliveryFilter) -> Select:
    """SELECT the notifications in view with a delivery that matches (no order, no limit)."""
    stmt = scoped(select(Notification), Notification, f.merchant_id).where(
        Notification.livemode == f.livemode,
        exists().where(Delivery.notification_id == Notification.id, *_matching(f)),
    )
    if f.event_type:
        stmt = stmt.where(Notification.event_type == f.event_type)
    if f.event_public_id:
        stmt = stmt.where(Notification.public_id == f.event_public_id)
    if f.created_gte:
        stmt = stmt.where(Notification.created_at >= f.created_gte)
    if f.created_lte:
        stmt = stmt.where(Notification.created_at <= f.created_lte)
    return stmt


def page(f: DeliveryFilter, *, after: str | None = None, before: str | None = None) -> DeliveryPage:
    """One page of the log: the matching deliveries of up to a page of events, newest first."""
    events = keyset_page(
        events_with_deliveries(f), Notification, CURSOR_SCOPE, after=after, before=before
    )
    return DeliveryPage(rows=_deliveries_of(events, f), older=events.older, newer=events.newer)


def _deliveries_of(events: Page, f: DeliveryFilter) -> list[Delivery]:
    if not events.rows:
        return []
    order = {n.id: i for i, n in enumerate(events.rows)}
    found = db.session.scalars(
        select(Delivery)
        .where(Delivery.notification_id.in_(order), *_matching(f))
        .options(selectinload(Delivery.endpoint), selectinload(Delivery.notification))
    ).all()
    return sorted(found, key=lambda d: (order[d.notification_id], d.id))


def endpoints_in_view(merchant_id: int | None, livemode: bool) -> list[NotificationEndpoint]:
    """The endpoints the filter offers (deleted ones too: their deliveries stay in the log)."""
    stmt = scoped(select(NotificationEndpoint), NotificationEndpoint, merchant_id).where(
        NotificationEndpoint.livemode == livemode
    )
    return list(db.session.scalars(stmt.order_by(NotificationEndpoint.id)))


def delivery_in_scope(delivery_id: int, *, merchant_id: int | None) -> Delivery | None:
    """One delivery with its event, endpoint and attempts, if the scope may see it."""
    stmt = (
        select(Delivery)
        .join(Notification, Notification.id == Delivery.notification_id)
        .where(Delivery.id == delivery_id)
    )
    stmt = scoped(stmt, Notification, merchant_id)
    return db.session.scalars(stmt).one_or_none()


def attempts_of(delivery: Delivery) -> list[NotificationAttempt]:
    """Its attempts, newest first."""
    return list(
        db.session.scalars(
            select(NotificationAttempt)
            .where(NotificationAttempt.delivery_id == delivery.id)
            .order_by(NotificationAttempt.id.desc())
        )
    )
