"""Helpers for webhook tests: PSP sessions and events, signed bodies, stored counts."""

from __future__ import annotations

import json
import secrets
import time
from datetime import timedelta

import stripe

from app.models import Notification, Payment, PaymentConflict, PspEvent, utcnow
from app.psp.base import CheckoutSession, PspEventData
from tests.support.factories import FINAL_NEWS, PaymentRef
from tests.support.rows import count_rows, get_row

WEBHOOK_SECRET = "whsec_test_paybridge"  # what tests/conftest.py configures


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


def session_for(payment: PaymentRef, **overrides) -> CheckoutSession:
    """The PSP's view of the payment's checkout session (complete and paid unless overridden)."""
    values = {
        "id": payment.session_id,
        "status": "complete",
        "payment_status": "paid",
        "url": None,
        "amount_total": payment.amount,
        "currency": payment.currency,
        "client_reference_id": payment.public_id,
        "metadata": {
            "paybridge_payment_id": payment.public_id,
            "merchant_reference": payment.reference,
        },
        "payment_intent_id": "pi_" + secrets.token_hex(8),
        "subscription_id": None,
        "expires_at": utcnow() + timedelta(hours=1),
        "created_at": utcnow(),
    }
    values.update(overrides)
    return CheckoutSession(**values)


def event_for(event_type: str, session: CheckoutSession | None, event_id: str | None = None):
    event_id = event_id or new_event_id()
    raw = {"id": event_id, "object": "event", "type": event_type, "data": {"object": {}}}
    if session is not None:
        raw["data"]["object"] = {"id": session.id, "object": "checkout.session"}
    return PspEventData(id=event_id, type=event_type, created_at=utcnow(), session=session, raw=raw)


def stripe_event_body(
    event_type: str, payment: PaymentRef, event_id: str | None = None, **fields
) -> bytes:
    """An event as Stripe sends it (pretty-printed JSON) about the payment's session."""
    session = {
        "id": payment.session_id,
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": payment.amount,
        "currency": payment.currency.lower(),
        "client_reference_id": payment.public_id,
        "metadata": {
            "paybridge_payment_id": payment.public_id,
            "merchant_reference": payment.reference,
        },
        "payment_intent": "pi_" + secrets.token_hex(8),
        "subscription": None,
        "url": None,
        "created": int(time.time()) - 60,
        "expires_at": int(time.time()) + 3600,
        "livemode": False,
    }
    session.update(fields)
    event = {
        "id": event_id or new_event_id(),
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": session},
    }
    return json.dumps(event, indent=2).encode()


def sign(body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=timestamp or int(time.time())
    )


def stripe_headers(body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None):
    return {
        "Stripe-Signature": sign(body, secret, timestamp),
        "Content-Type": "application/json; charset=utf-8",
    }


def load_payment(app, payment_id: int) -> Payment:
    """The payment with its history and merchant loaded."""
    return get_row(app, Payment, payment_id, load=("history", "merchant"))


def counts(app, payment_id: int | None = None) -> dict:
    """How many events, notifications and conflicts are stored (for one payment, if given).
    Notifications: those of the types a notify_url received (a final status, a refund, a
    dispute), not the payment.initiated / .pending every payment has too."""
    by = {} if payment_id is None else {"payment_id": payment_id}
    return {
        "events": count_rows(app, PspEvent, **by),
        "notifications": count_rows(app, Notification, FINAL_NEWS, **by),
        "conflicts": count_rows(app, PaymentConflict, **by),
    }
