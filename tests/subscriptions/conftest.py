"""Subscription tests: a subscription bought through the emulator (its webhooks delivered to
the live server by the root `stripe_delivers`), its rows as plain dicts, and ways to bill its
next period and wait for the renewals."""

from __future__ import annotations

from datetime import UTC

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Payment, Subscription
from tests.support.factories import new_reference, registered_payment
from tests.support.psp import pay_session, stripe_get, wait_for_deliveries
from tests.support.rows import read
from tests.support.waiting import wait_until

TIMEOUT = 20.0  # a webhook chain: the emulator's clock, its deliveries, PayBridge's answers


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

    def factory(merchant_id: int, *, amount: int = 1500, interval: str = "day", reference=None):
        payment = registered_payment(
            app,
            merchant_id,
            merchant_reference=reference or new_reference("plan"),
            amount=amount,
            payment_type="RECC",
            interval=interval,
            interval_count=1,
            description="Print of the month",
            customer_email="ada@example.com",
            metadata={"plan": "monthly-print"},
        )
        pay_session(stripe_delivers, payment.session_id)

        def active():
            sub = subscription_row(app, payment.id)
            status = payments_of(app, payment.id)[0]["status"]
            if sub and sub["status"] == "active" and status == "SUCCESS":
                if sub["current_period_end"] is not None:
                    return sub
            return None

        return payment.id, wait_until(
            active, what="subscription bought and active", timeout=TIMEOUT
        )

    return factory


def bill_next_period(emulator, sub: dict) -> None:
    """Move the emulator's clock just past the subscription's current period end."""
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

    return wait_until(enough, what=f"{count} payments of the subscription", timeout=TIMEOUT)


def renew(app, emulator, first_payment_id: int, sub: dict, *, payments: int = 2) -> list[dict]:
    """Bill the next period and wait until PayBridge holds `payments` final payments of the
    subscription and has answered every webhook; those payments."""
    bill_next_period(emulator, sub)
    wait_for_payments(app, first_payment_id, payments)
    wait_for_deliveries(emulator, timeout=TIMEOUT)
    return payments_of(app, first_payment_id)


def renewal_invoice_event(emulator, psp_subscription_id: str) -> dict:
    """The emulator's invoice.paid event of the subscription's first renewal."""
    events = stripe_get(emulator, "/v1/events", type="invoice.paid", limit=100)["data"]
    [event] = [
        e
        for e in events
        if e["data"]["object"]["billing_reason"] == "subscription_cycle"
        and e["data"]["object"]["parent"]["subscription_details"]["subscription"]
        == psp_subscription_id
    ]
    return event
