"""A merchant's notification endpoints: the one place that creates, changes, disables, rotates
and deletes them, for the API and the dashboard alike.

They take explicit arguments, flush, and leave the commit to the caller (view or CLI), so the
change and its audit row land in one transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import select, update

from app.common.locks import lock_row, read_committed
from app.common.urls import split_url
from app.errors import NotFoundError, ValidationError
from app.extensions import db
from app.models import NotificationDelivery, NotificationEndpoint, utcnow
from app.models.endpoint import ALL_EVENT_TYPES
from app.notifications import delivery
from app.notifications.event_types import EVENT_TYPES, SUBSCRIBABLE
from app.notifications.targets import TargetRefused, check_target, parse_networks

ALLOWLIST_HINT = (
    "If it is an on-premises client app on a private network, the operator can allow that "
    "network (NOTIFY_ALLOWED_NETWORKS)."
)
URL_MAX = 2000
# The longest the previous secret may keep signing after a rotation (as Stripe: 24 hours).
ROTATION_GRACE_MAX = 24 * 3600
DESCRIPTION_MAX = 500
# The reason of an endpoint the worker disabled because every attempt failed for too long
# (app/notifications/health.py).
FAILING = "failing"
# Sent to no endpoint any more: what its pending deliveries say when it is disabled or deleted.
STOPPED = {"disabled": "the endpoint was disabled", "deleted": "the endpoint was deleted"}


def validate_url(url: str | None, *, allowed_networks: Iterable[str], param: str = "url") -> str:
    """An absolute http(s) URL whose host resolves, now, only to public addresses or to
    `allowed_networks` (CIDRs); else ValidationError saying what is wrong. Delivery checks
    again at every attempt: a name may resolve elsewhere later."""
    url = (url or "").strip()
    if not url:
        raise ValidationError("Enter the URL PayBridge should notify.", param=param)
    if len(url) > URL_MAX:
        raise ValidationError(f"The URL is longer than {URL_MAX} characters.", param=param)
    if any(ch.isspace() for ch in url):
        raise ValidationError("The URL must not contain spaces.", param=param)
    parts = split_url(url, param=param)
    if parts.scheme not in ("http", "https"):
        raise ValidationError("The URL must start with https:// or http://.", param=param)
    if not parts.hostname:
        raise ValidationError("The URL needs a host name.", param=param)
    try:
        check_target(url, allowed_networks=parse_networks(allowed_networks))
    except TargetRefused as refused:
        message = f"The URL is refused: {refused.reason}. {ALLOWLIST_HINT}"
        raise ValidationError(message, param=param) from None
    return url


def validate_event_types(event_types: Iterable[str] | None) -> list[str]:
    """The subscribed types, each known (or "*" for all), none twice, at least one."""
    chosen = list(dict.fromkeys(event_types or ()))
    if not chosen:
        raise ValidationError(
            'Choose at least one event type (or "*" for all).', param="enabled_events"
        )
    unknown = [t for t in chosen if t not in SUBSCRIBABLE]
    if unknown:
        raise ValidationError(
            f"Unknown event type(s): {', '.join(map(str, unknown))}. Known: "
            f'{", ".join(EVENT_TYPES)} (or "*" for all).',
            param="enabled_events",
        )
    return [ALL_EVENT_TYPES] if ALL_EVENT_TYPES in chosen else chosen


def validate_description(description: str | None) -> str | None:
    description = (description or "").strip() or None
    if description is not None and len(description) > DESCRIPTION_MAX:
        raise ValidationError(
            f"The description is longer than {DESCRIPTION_MAX} characters.", param="description"
        )
    return description


def of_merchant(merchant_id: int, livemode: bool) -> list[NotificationEndpoint]:
    """The merchant's endpoints of one mode (not deleted), oldest first."""
    return list(
        db.session.scalars(
            select(NotificationEndpoint)
            .where(
                NotificationEndpoint.merchant_id == merchant_id,
                NotificationEndpoint.livemode == livemode,
                NotificationEndpoint.deleted_at.is_(None),
            )
            .order_by(NotificationEndpoint.id)
        )
    )


def get_endpoint(
    merchant_id: int, public_id: str, livemode: bool, *, for_update: bool = False
) -> NotificationEndpoint:
    """The merchant's endpoint of that mode; another merchant's or mode's is not found.

    `for_update` (every change, API and dashboard): the row as committed now, locked until the
    caller commits, so a change is decided on the current row (an auto-disable committed
    meanwhile is seen, and one that comes after waits) and not on the request's snapshot."""
    if for_update:
        endpoint = lock_row(NotificationEndpoint, public_id, column="public_id")
    else:
        endpoint = db.session.scalar(
            select(NotificationEndpoint).where(NotificationEndpoint.public_id == public_id)
        )
    if (
        endpoint is None
        or (endpoint.merchant_id, endpoint.livemode) != (merchant_id, livemode)
        or endpoint.deleted_at is not None
    ):
        raise NotFoundError("NOTIFICATION_ENDPOINT_NOT_FOUND")
    return endpoint


def create_endpoint(
    merchant_id: int,
    livemode: bool,
    *,
    url: str,
    event_types: Iterable[str],
    description: str | None = None,
    enabled: bool = True,
    allowed_networks: Iterable[str],
) -> NotificationEndpoint:
    endpoint = NotificationEndpoint(
        merchant_id=merchant_id,
        livemode=livemode,
        url=validate_url(url, allowed_networks=allowed_networks),
        event_types=validate_event_types(event_types),
        description=validate_description(description),
    )
    db.session.add(endpoint)
    if not enabled:
        _disable(endpoint, "disabled when created")
    db.session.flush()
    return endpoint


def update_endpoint(
    endpoint: NotificationEndpoint, changes: dict, *, allowed_networks: Iterable[str]
) -> dict:
    """Apply the given fields (url, description, enabled_events, disabled); returns what
    changed, {field: [old, new]}, for the audit log."""
    new: dict = {}
    if "url" in changes:
        new["url"] = validate_url(changes["url"], allowed_networks=allowed_networks)
    if "description" in changes:
        new["description"] = validate_description(changes["description"])
    if "enabled_events" in changes:
        new["event_types"] = validate_event_types(changes["enabled_events"])
    done = {}
    for field, value in new.items():
        if getattr(endpoint, field) != value:
            done[field] = [getattr(endpoint, field), value]
            setattr(endpoint, field, value)
    if "disabled" in changes and bool(changes["disabled"]) == endpoint.enabled:
        done["enabled"] = [endpoint.enabled, not changes["disabled"]]
        if changes["disabled"]:
            _disable(endpoint, "disabled by the merchant")
        else:
            endpoint.enabled = True
            endpoint.disabled_reason = None
            endpoint.disabled_at = None
            endpoint.failing_since = None  # a fresh start: its next failure starts the clock
    db.session.flush()
    return done


def rotate_secret(endpoint: NotificationEndpoint, expires_in: int) -> str:
    """Start a rotation: the new secret signs from now on, the previous one keeps signing too
    for `expires_in` seconds (0: it stops now), as Stripe's `expires_at`."""
    if not 0 <= expires_in <= ROTATION_GRACE_MAX:
        raise ValidationError(
            f"expires_in is 0 to {ROTATION_GRACE_MAX} seconds (24 hours).", param="expires_in"
        )
    secret = endpoint.rotate_signing_secret(timedelta(seconds=expires_in))
    db.session.flush()
    return secret


def delete_endpoint(endpoint: NotificationEndpoint) -> None:
    """Stop sending to it for good; its deliveries and attempts stay readable."""
    endpoint.enabled = False
    endpoint.deleted_at = utcnow()
    _stop_pending(endpoint, STOPPED["deleted"])
    db.session.flush()


def disable(endpoint: NotificationEndpoint, reason: str) -> None:
    """Send it nothing more until enabled; its pending deliveries fail (resendable)."""
    _disable(endpoint, reason)
    db.session.flush()


def _disable(endpoint: NotificationEndpoint, reason: str) -> None:
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    endpoint.disabled_at = utcnow()
    if endpoint.id is not None:
        _stop_pending(endpoint, STOPPED["disabled"])


def _stop_pending(endpoint: NotificationEndpoint, why: str) -> None:
    """A disabled endpoint gets nothing: its pending deliveries fail now (each resendable),
    and their notifications say so. Notifications are locked before their deliveries, as in
    every writer of both."""
    pending = (
        NotificationDelivery.endpoint_id == endpoint.id,
        NotificationDelivery.status == NotificationDelivery.STATUS_PENDING,
    )
    # The endpoint's row first: a fan-out under way (which reads endpoints in share mode)
    # commits before this goes on, and none starts after; then every delivery it made is read.
    db.session.flush()
    rows = read_committed(select(NotificationDelivery.notification_id).where(*pending))
    notification_ids = [row[0] for row in rows]
    if not notification_ids:
        return
    delivery.lock_notifications(notification_ids)
    db.session.execute(
        update(NotificationDelivery)
        .where(*pending)
        .values(status=NotificationDelivery.STATUS_FAILED, next_attempt_at=None, last_error=why)
    )
    delivery.resummarise(notification_ids)
