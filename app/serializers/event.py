"""The event as the Events API shows it: the notification's body, as its endpoint received it,
plus what an API object carries (`object`, `created`)."""

from __future__ import annotations

from app.models import Notification, iso


def event_to_dict(notification: Notification) -> dict:
    """The frozen body (`id`, `type`, `livemode`, `timestamp`, `data`): the exact object a
    client's endpoint verified, so one handler takes both a delivery and an event pulled."""
    body = notification.payload
    return {
        "id": notification.public_id,
        "object": "event",
        "type": notification.event_type,
        "livemode": notification.livemode,
        "created": iso(notification.created_at),
        **{key: value for key, value in body.items() if key not in ("id", "type", "livemode")},
    }
