"""The PSP's invoice and subscription events, handled inside the event intake's transaction.

Each handler (registered in `app/wiring.py`) locks what it changes, flushes, and says what it
made of the event. The event row's unique id already drops a duplicate delivery; the charge's
unique (invoice, attempt) key drops the same fact arriving another way.
"""

from __future__ import annotations

from app.models import PspEvent, StatusSource
from app.psp.base import PspEventData
from app.psp_events.intake import Handled, mode_mismatch
from app.subscriptions import service

INVOICE_PAID = "invoice.paid"
INVOICE_PAYMENT_FAILED = "invoice.payment_failed"
SUBSCRIPTION_CREATED = "customer.subscription.created"
SUBSCRIPTION_UPDATED = "customer.subscription.updated"
SUBSCRIPTION_DELETED = "customer.subscription.deleted"

INVOICE_EVENT_TYPES = (INVOICE_PAID, INVOICE_PAYMENT_FAILED)
SUBSCRIPTION_EVENT_TYPES = (SUBSCRIPTION_CREATED, SUBSCRIPTION_UPDATED, SUBSCRIPTION_DELETED)


def handle_invoice(event: PspEventData, source: StatusSource) -> Handled:
    """invoice.paid / invoice.payment_failed: one charge of the subscription, recorded once."""
    invoice = event.invoice
    if invoice is None:
        return Handled(PspEvent.OUTCOME_UNHANDLED, "the event carries no invoice")
    if not invoice.subscription_id:
        return Handled(PspEvent.OUTCOME_IGNORED, f"invoice {invoice.id} belongs to no subscription")
    wrong_mode = _wrong_mode(event, invoice.subscription_id, invoice.metadata)
    if wrong_mode is not None:
        return wrong_mode
    outcome, detail, payment = service.apply_invoice(
        invoice, paid=event.type == INVOICE_PAID, source=source, psp_event_id=event.id
    )
    return Handled(outcome, detail, payment.id if payment is not None else None)


def handle_subscription(event: PspEventData, source: StatusSource) -> Handled:
    """customer.subscription.*: its status, period and cancellation."""
    state = event.subscription
    if state is None:
        return Handled(PspEvent.OUTCOME_UNHANDLED, "the event carries no subscription")
    wrong_mode = _wrong_mode(event, state.id, state.metadata)
    if wrong_mode is not None:
        return wrong_mode
    outcome, detail, subscription = service.apply_psp_subscription(
        state, observed_at=event.created_at, ended=event.type == SUBSCRIPTION_DELETED
    )
    first_payment_id = subscription.first_payment_id if subscription is not None else None
    return Handled(outcome, detail, first_payment_id)


def _wrong_mode(event: PspEventData, psp_subscription_id: str, metadata: dict) -> Handled | None:
    """A `mode_mismatch` outcome when the subscription the event is about is of the other mode."""
    owner = service.owner_mode(psp_subscription_id, metadata)
    if owner is None:
        return None
    livemode, first_payment_id = owner
    detail = mode_mismatch(event, livemode, f"subscription {psp_subscription_id}")
    return Handled(PspEvent.OUTCOME_MODE_MISMATCH, detail, first_payment_id) if detail else None
