"""The notification endpoint as client apps see it (API answers)."""

from __future__ import annotations

from app.models import NotificationEndpoint, iso


def endpoint_to_dict(endpoint: NotificationEndpoint, *, secret: str | None = None) -> dict:
    """`secret`: only on the answer that created or rotated it; it is never shown again."""
    data = {
        "id": endpoint.public_id,
        "object": "notification_endpoint",
        "livemode": endpoint.livemode,
        "url": endpoint.url,
        "description": endpoint.description,
        "enabled_events": list(endpoint.event_types),
        "status": "enabled" if endpoint.enabled else "disabled",
        "disabled_reason": endpoint.disabled_reason,
        "disabled_at": iso(endpoint.disabled_at),
        "failing_since": iso(endpoint.failing_since),
        "secret_rotated_at": iso(endpoint.secret_rotated_at),
        "previous_secret_expires_at": iso(endpoint.previous_secret_signs_until()),
        "created_at": iso(endpoint.created_at),
        "updated_at": iso(endpoint.updated_at),
    }
    if secret is not None:
        data["secret"] = secret
    return data
