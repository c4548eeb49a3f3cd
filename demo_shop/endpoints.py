"""The shop's notification endpoints at PayBridge: one per part of the shop that listens, each
with its own URL path, event types and signing secret — copy the idea, not necessarily the split.

    orders   /notify/orders    payment.succeeded, payment.failed (a renewal is a payment too)
    refunds  /notify/refunds   refund.*, dispute.* (money going back, or at risk)

`python -m demo_shop init` creates them through PayBridge's API (POST
/api/v1/notification_endpoints) once, and keeps each one's id and secret in the instance file
(the secret is shown only in the answer that created it). A shop connected before endpoints
(one notify URL, `PAYBRIDGE_SIGNING_SECRET`) keeps its `POST /notify` working.
"""

from __future__ import annotations

from dataclasses import dataclass

from demo_shop.paybridge import PayBridgeClient


@dataclass(frozen=True)
class ShopEndpoint:
    name: str
    path: str
    event_types: tuple[str, ...]
    description: str

    @property
    def secret_setting(self) -> str:
        """The setting holding its signing secret(s), comma-separated while PayBridge rotates."""
        return f"PAYBRIDGE_{self.name.upper()}_SIGNING_SECRET"

    @property
    def id_setting(self) -> str:
        return f"PAYBRIDGE_{self.name.upper()}_ENDPOINT_ID"

    def receives(self, event_type: str) -> bool:
        return event_type in self.event_types


ENDPOINTS = {
    e.name: e
    for e in (
        ShopEndpoint(
            "orders",
            "/notify/orders",
            ("payment.succeeded", "payment.failed"),
            "Demo shop: orders (payments and renewals)",
        ),
        ShopEndpoint(
            "refunds",
            "/notify/refunds",
            (
                "refund.succeeded",
                "refund.failed",
                "dispute.created",
                "dispute.updated",
                "dispute.closed",
            ),
            "Demo shop: refunds and disputes",
        ),
    )
}


def create_missing(client: PayBridgeClient, public_url: str, settings: dict) -> dict:
    """Create at PayBridge each endpoint `settings` has no id for; the settings to keep for
    them ({id_setting: we_…, secret_setting: whsec_…}). PayBridgeError when PayBridge refuses."""
    created: dict = {}
    for endpoint in ENDPOINTS.values():
        if settings.get(endpoint.id_setting):
            continue
        answer = client.create_notification_endpoint(
            url=public_url.rstrip("/") + endpoint.path,
            enabled_events=list(endpoint.event_types),
            description=endpoint.description,
        )
        created[endpoint.id_setting] = answer["id"]
        created[endpoint.secret_setting] = answer["secret"]
    return created
