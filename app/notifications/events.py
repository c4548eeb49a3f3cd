"""The Events API's reads: every notification is an event its merchant's API keys of the same
mode can pull, newest first, for EVENTS_RETENTION_DAYS after it was written.

A notification is written once per happening per merchant (whatever endpoints it is delivered
to), so the events are the notifications rows; the retention cut-off is applied here, on every
read, so an event past it is gone at once, before the purge deletes the row (retention keeps
delivered notifications at least that long: app/retention/service.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import ColumnElement, Select, or_, select

from app.common import cursors
from app.errors import PayBridgeError
from app.extensions import db
from app.models import Notification, utcnow
from app.models.base import naive_utc
from app.notifications import event_types
from app.payments.queries import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

# Every type a notification (an event) can have (the one list: event_types.py); the `type`
# filter accepts these or a family with a wildcard (`payment.*`).
EVENT_TYPES = tuple(event_types.EVENT_TYPES)
EVENT_FAMILIES = tuple(sorted({event_type.split(".")[0] for event_type in EVENT_TYPES}))
MAX_TYPES = 20  # as Stripe's `types[]`
_WILDCARD = re.compile(r"^([a-z_]+)\.\*$")


@dataclass
class EventPage:
    events: list[Notification]
    has_more: bool
    next_cursor: str | None


def retention_cutoff(now: datetime | None = None) -> datetime:
    """The oldest `created` an event may have to be served now."""
    days = current_app.config["EVENTS_RETENTION_DAYS"]
    return (now or utcnow()) - timedelta(days=days)


def parse_types(value: str) -> list[str]:
    """`payment.succeeded`, `payment.*` or several, comma-separated: the types and families
    (as `payment.`) asked for; ValueError saying what is wrong otherwise."""
    wanted = [item.strip() for item in value.split(",")]
    if not all(wanted):
        raise ValueError("Give event types separated by commas, with none empty.")
    if len(wanted) > MAX_TYPES:
        raise ValueError(f"At most {MAX_TYPES} event types.")
    parsed = []
    for item in wanted:
        family = _WILDCARD.match(item)
        if family and family.group(1) in EVENT_FAMILIES:
            parsed.append(family.group(1) + ".")
        elif item in EVENT_TYPES:
            parsed.append(item)
        else:
            raise ValueError(
                f"{item!r} is not an event type: one of {', '.join(EVENT_TYPES)}, or a family "
                f"with a wildcard ({', '.join(f + '.*' for f in EVENT_FAMILIES)})."
            )
    return parsed


def _of_key(merchant_id: int, livemode: bool) -> Select:
    """The merchant's events of one mode still within retention."""
    return select(Notification).where(
        Notification.merchant_id == merchant_id,
        Notification.livemode == livemode,
        Notification.created_at >= retention_cutoff(),
    )


def _type_is(types: list[str]) -> ColumnElement[bool]:
    """Exact types, and families (`payment.`) as a prefix: a range on the type's index."""
    return or_(
        *(
            Notification.event_type.startswith(t, autoescape=True)
            if t.endswith(".")
            else Notification.event_type == t
            for t in types
        )
    )


def list_events(
    merchant_id: int,
    *,
    livemode: bool,
    type: str | None = None,  # the query parameter's name
    created_gte: datetime | None = None,
    created_lte: datetime | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    starting_after: str | None = None,
) -> EventPage:
    """The merchant's events of one mode, newest first, filtered, one page after the cursor.
    `type`: as parse_types takes it (the API's schema has refused what it refuses)."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    stmt = _of_key(merchant_id, livemode)
    if type:
        stmt = stmt.where(_type_is(parse_types(type)))
    if created_gte:
        stmt = stmt.where(Notification.created_at >= naive_utc(created_gte))
    if created_lte:
        stmt = stmt.where(Notification.created_at <= naive_utc(created_lte))
    # A cursor is only good in the list (merchant and mode) that gave it out.
    scope = f"api.events:{merchant_id}:{'live' if livemode else 'test'}"
    return EventPage(
        *cursors.newest_first_page(
            db.session,
            stmt,
            Notification.created_at,
            Notification.id,
            scope=scope,
            starting_after=starting_after,
            limit=limit,
        )  # fmt: skip
    )


def get_event(merchant_id: int, public_id: str, *, livemode: bool) -> Notification:
    """One of the merchant's events of the key's mode; anyone else's, the other mode's, or one
    past retention is EVENT_NOT_FOUND like a missing one."""
    stmt = _of_key(merchant_id, livemode).where(Notification.public_id == public_id)
    event = db.session.execute(stmt).scalar_one_or_none()
    if event is None:
        raise PayBridgeError("EVENT_NOT_FOUND", param="id")
    return event
