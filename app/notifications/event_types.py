"""Every event type a notification can have: the one list endpoints subscribe from, the API
validates against, and the OpenAPI document and docs/notifications.md describe.

Each names what its `data` is (a schema of the OpenAPI document's components, built in
app/blueprints/api/event_docs.py from the API's objects as app/notifications/outbox.py sends
them)."""

from __future__ import annotations

from dataclasses import dataclass

from app.models.endpoint import ALL_EVENT_TYPES


@dataclass(frozen=True)
class EventType:
    name: str
    data: str  # the OpenAPI component its `data` is: one of the *_DATA below
    description: str


PAYMENT_DATA = "PaymentEventData"
ATTEMPT_DATA = "PaymentAttemptFailedEventData"
REFUND_DATA = "RefundEventData"
SUBSCRIPTION_DATA = "SubscriptionEventData"
DISPUTE_DATA = "DisputeEventData"

EVENT_TYPES: dict[str, EventType] = {
    t.name: t
    for t in (
        EventType("payment.initiated", PAYMENT_DATA, "Registered at the PSP; the shopper can pay."),
        EventType(
            "payment.pending", PAYMENT_DATA, "Paid with a method that settles later (not final)."
        ),
        EventType("payment.succeeded", PAYMENT_DATA, "Paid (final status SUCCESS)."),
        EventType(
            "payment.failed", PAYMENT_DATA, "Not paid: declined, expired or canceled (FAILED)."
        ),
        EventType(
            "payment.attempt_failed",
            ATTEMPT_DATA,
            "One try to pay was declined (told once per attempt): on the hosted page the "
            "payment stays open for another; a delayed method's failed debit also fails it.",
        ),
        EventType("refund.succeeded", REFUND_DATA, "A refund went through."),
        EventType("refund.failed", REFUND_DATA, "A refund failed at the PSP."),
        EventType("subscription.created", SUBSCRIPTION_DATA, "A first RECC payment started one."),
        EventType("subscription.renewed", SUBSCRIPTION_DATA, "A renewal was paid."),
        EventType("subscription.past_due", SUBSCRIPTION_DATA, "A renewal payment failed."),
        EventType("subscription.canceled", SUBSCRIPTION_DATA, "It ended (canceled at the PSP)."),
        EventType("dispute.created", DISPUTE_DATA, "A shopper disputed a payment."),
        EventType("dispute.updated", DISPUTE_DATA, "The dispute changed (evidence, status)."),
        EventType("dispute.closed", DISPUTE_DATA, "The dispute was decided (won or lost)."),
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
