"""Every event type a notification can have: the one list endpoints subscribe from, the API
validates against, and the OpenAPI document and docs/notifications.md describe.

Each names what its `data` is (a schema of the OpenAPI document's components)."""

from __future__ import annotations

from dataclasses import dataclass

from app.models.endpoint import ALL_EVENT_TYPES


@dataclass(frozen=True)
class EventType:
    name: str
    data: str  # the OpenAPI component `data` has: Payment, Refund, Dispute, Subscription
    description: str


EVENT_TYPES: dict[str, EventType] = {
    t.name: t
    for t in (
        EventType("payment.initiated", "Payment", "Registered at the PSP; the shopper can pay."),
        EventType(
            "payment.pending", "Payment", "Paid with a method that settles later (not final)."
        ),
        EventType("payment.succeeded", "Payment", "Paid (final status SUCCESS)."),
        EventType("payment.failed", "Payment", "Not paid: declined, expired or canceled (FAILED)."),
        EventType(
            "payment.attempt_failed",
            "Payment",
            "Reserved: one attempt to pay failed, the payment stays open (sent once payment "
            "attempts are recorded).",
        ),
        EventType("refund.succeeded", "Refund", "A refund went through."),
        EventType("refund.failed", "Refund", "A refund failed at the PSP."),
        EventType("subscription.created", "Subscription", "A first RECC payment started one."),
        EventType("subscription.renewed", "Subscription", "A renewal was paid."),
        EventType("subscription.past_due", "Subscription", "A renewal payment failed."),
        EventType("subscription.canceled", "Subscription", "It ended (canceled at the PSP)."),
        EventType("dispute.created", "Dispute", "A shopper disputed a payment."),
        EventType("dispute.updated", "Dispute", "The dispute changed (evidence, status)."),
        EventType("dispute.closed", "Dispute", "The dispute was decided (won or lost)."),
    )
}

# What a merchant's notify_url received before endpoints: its migrated endpoint (0022) gets
# exactly these, so no existing client app sees a type it does not know.
LEGACY_EVENT_TYPES = (
    "payment.succeeded",
    "payment.failed",
    "refund.succeeded",
    "refund.failed",
    "dispute.created",
    "dispute.updated",
    "dispute.closed",
)

SUBSCRIBABLE = (ALL_EVENT_TYPES, *EVENT_TYPES)
