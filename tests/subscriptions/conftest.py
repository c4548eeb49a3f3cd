"""Fixtures for the subscription tests: the emulator delivering its webhooks to the live
server, a subscription bought through it, and ways to bill its next period and wait."""

from __future__ import annotations

import secrets
import time

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Payment, Subscription

CARD = "4242424242424242"


@pytest.fixture
def stripe_delivers(app, emulator, live_server):
    """The emulator, reset (clock too), delivering every event to PayBridge's webhook."""
    emulator.control("POST", "reset")
    emulator.control(
        "POST",
        "webhook_endpoints",
        {
            "url": live_server.url + "/webhooks/stripe",
            "secret": app.config["STRIPE_WEBHOOK_SECRETS"][0],
        },
    )
    yield emulator
    emulator.control("POST", "reset")


def wait_for(predicate, *, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def read(app, fn):
    """Run fn() in a fresh app context (sees every commit so far) and return its result."""
    with app.app_context():
        try:
            return fn()
        finally:
            db.session.remove()


def subscription_row(app, payment_id: int) -> dict | None:
    def load():
        sub = db.session.execute(
            select(Subscription).where(Subscription.first_payment_id == payment_id)
        ).scalar_one_or_none()
        if sub is None:
            return None
        return {c.key: getattr(sub, c.key) for c in Subscription.__table__.columns}

    return read(app, load)


def payments_of(app, first_payment_id: int) -> list[dict]:
    """The first payment and its renewals, oldest first, as plain dicts."""

    def load():
        rows = db.session.execute(
            select(Payment)
            .where(
                (Payment.id == first_payment_id) | (Payment.parent_payment_id == first_payment_id)
            )
            .order_by(Payment.id)
        ).scalars()
        return [
            {
                "id": p.id,
                "public_id": p.public_id,
                "reference": p.merchant_reference,
                "status": p.status,
                "amount": p.amount,
                "currency": p.currency,
                "payment_type": p.payment_type,
                "parent_payment_id": p.parent_payment_id,
                "psp_subscription_id": p.psp_subscription_id,
                "psp_payment_intent_id": p.psp_payment_intent_id,
                "failure_code": p.failure_code,
                "history": [(h.from_status, h.to_status, h.source) for h in p.history],
            }
            for p in rows
        ]

    return read(app, load)


@pytest.fixture
def buy_subscription(app, stripe_delivers):
    """A RECC payment created through the payment core and paid at the emulator; waits until
    the webhooks made it SUCCESS with an active subscription. Returns (payment_id, sub dict)."""
    from app.payments.service import create_payment

    def factory(merchant_id: int, *, amount: int = 1500, interval: str = "day", reference=None):
        with app.app_context():
            payment = create_payment(
                merchant_id,
                {
                    "merchant_reference": reference or "plan-" + secrets.token_hex(4),
                    "amount": amount,
                    "currency": "EUR",
                    "payment_type": "RECC",
                    "interval": interval,
                    "interval_count": 1,
                    "description": "Print of the month",
                    "customer_email": "ada@example.com",
                    "success_url": "https://shop.example/ok",
                    "cancel_url": "https://shop.example/cancel",
                    "metadata": {"plan": "monthly-print"},
                },
                idempotency_key=None,
            )
            payment_id, session_id = payment.id, payment.psp_session_id
            db.session.remove()
        stripe_delivers.control("POST", f"checkout/sessions/{session_id}/pay", {"card": CARD})

        def active():
            sub = subscription_row(app, payment_id)
            status = payments_of(app, payment_id)[0]["status"]
            if sub and sub["status"] == "active" and status == "SUCCESS":
                if sub["current_period_end"] is not None:
                    return sub
            return None

        return payment_id, wait_for(active, what="subscription bought and active")

    return factory


def bill_next_period(emulator, sub: dict) -> None:
    """Move the emulator's clock just past the subscription's current period end."""
    from datetime import UTC

    end = int(sub["current_period_end"].replace(tzinfo=UTC).timestamp())
    now = emulator.control("GET", "clock")["now"]
    emulator.control("POST", "clock/advance", {"seconds": max(1, end - now + 1)})


def wait_for_payments(app, first_payment_id: int, count: int, *, final: bool = True):
    def enough():
        rows = payments_of(app, first_payment_id)
        if len(rows) >= count and (
            not final or all(r["status"] in ("SUCCESS", "FAILED") for r in rows)
        ):
            return rows
        return None

    return wait_for(enough, what=f"{count} payments of the subscription")


def wait_for_deliveries_done(emulator, timeout: float = 20.0) -> list[dict]:
    """Every webhook the emulator queued has been answered by PayBridge."""

    def done():
        deliveries = emulator.control("GET", "deliveries")["data"]
        if deliveries and all(d["status"] in ("succeeded", "failed") for d in deliveries):
            return deliveries
        return None

    return wait_for(done, timeout=timeout, what="webhook deliveries")
