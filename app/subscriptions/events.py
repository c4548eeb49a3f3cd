"""The PSP's invoice and subscription events, applied inside process_event's transaction.

Registered with `app.webhooks.processing.register_event_handler` by `init_app`; each handler
gets the verified event and its freshly stored PspEvent row, locks what it changes, flushes,
and returns (outcome, detail). The event row's unique id already drops a duplicate delivery;
the charge's unique (invoice, attempt) key drops the same fact arriving another way.
"""

from __future__ import annotations

from app.models import PspEvent
from app.payments.status import StatusSource
from app.psp.base import PspEventData
from app.subscriptions import service

INVOICE_PAID = "invoice.paid"
INVOICE_PAYMENT_FAILED = "invoice.payment_failed"
SUBSCRIPTION_CREATED = "customer.subscription.created"
SUBSCRIPTION_UPDATED = "customer.subscription.updated"
SUBSCRIPTION_DELETED = "customer.subscription.deleted"

HANDLED_TYPES = (
    INVOICE_PAID,
    INVOICE_PAYMENT_FAILED,
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_UPDATED,
    SUBSCRIPTION_DELETED,
)


def handle_invoice(
    event: PspEventData, row: PspEvent, source: StatusSource
) -> tuple[str, str | None]:
    """invoice.paid / invoice.payment_failed: one charge of the subscription, recorded once."""
    invoice = event.invoice
    if invoice is None:
        return PspEvent.OUTCOME_UNHANDLED, "the event carries no invoice"
    if not invoice.subscription_id:
        return PspEvent.OUTCOME_IGNORED, f"invoice {invoice.id} belongs to no subscription"
    outcome, detail, payment = service.apply_invoice(
        invoice, paid=event.type == INVOICE_PAID, source=source, psp_event_id=event.id
    )
    if payment is not None:
        row.payment_id = payment.id
    return outcome, detail


def handle_subscription(
    event: PspEventData, row: PspEvent, source: StatusSource
) -> tuple[str, str | None]:
    """customer.subscription.*: its status, period and cancellation."""
    state = event.subscription
    if state is None:
        return PspEvent.OUTCOME_UNHANDLED, "the event carries no subscription"
    outcome, detail, subscription = service.apply_psp_subscription(
        state, observed_at=event.created_at, ended=event.type == SUBSCRIPTION_DELETED
    )
    if subscription is not None:
        row.payment_id = subscription.first_payment_id
    return outcome, detail


def register() -> None:
    from app.webhooks.processing import register_event_handler

    for event_type in (INVOICE_PAID, INVOICE_PAYMENT_FAILED):
        register_event_handler(event_type, handle_invoice)
    for event_type in (SUBSCRIPTION_CREATED, SUBSCRIPTION_UPDATED, SUBSCRIPTION_DELETED):
        register_event_handler(event_type, handle_subscription)
