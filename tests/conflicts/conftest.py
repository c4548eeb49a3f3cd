"""Fixtures for conflict tests: a payment paid for real at the emulator after PayBridge FAILED it.

The emulator refuses to pay an expired session, so the conflict is built the way it happens when
a webhook is lost: the customer pays session A at the emulator (no webhook endpoint registered,
so nothing reaches PayBridge), PayBridge fails the payment meanwhile (as reconciliation or an
operator would), and then Stripe's real `checkout.session.completed` event — fetched from the
emulator's Events API, as reconciliation's catch-up does — is processed. The payment intent
behind it really is paid, so a refund at the emulator has money to return.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Payment, PaymentConflict, PaymentStatus, StatusSource, utcnow
from app.payments.service import create_payment
from app.payments.state import lock_payment, transition
from app.psp import get_provider
from app.psp_events.intake import process_event
from tests.dashboard.conftest import client_a, client_b, client_op, tenants  # noqa: F401
from tests.refunds.conftest import emu  # noqa: F401

COMPLETED = "checkout.session.completed"


@dataclass(frozen=True)
class Conflicted:
    conflict_id: int
    payment_id: int
    public_id: str
    session_id: str
    payment_intent_id: str
    amount: int
    merchant_id: int


@dataclass(frozen=True)
class PaidAfterFailed:
    payment_id: int
    public_id: str
    session_id: str
    event: object  # the PSP's checkout.session.completed, not yet processed


@pytest.fixture
def failed_then_paid(app, emu):  # noqa: F811
    """A FAILED payment whose session was paid at the emulator; PayBridge has not heard yet."""

    def factory(merchant_id: int, amount: int = 2599, currency: str = "EUR") -> PaidAfterFailed:
        since = utcnow() - timedelta(seconds=5)
        with app.app_context():
            payment = create_payment(
                merchant_id,
                {
                    "merchant_reference": "late-" + secrets.token_hex(6),
                    "amount": amount,
                    "currency": currency,
                    "success_url": "https://shop.example/ok",
                    "cancel_url": "https://shop.example/cancel",
                },
                idempotency_key=None,
            )
            payment_id, session_id = payment.id, payment.psp_session_id
            public_id = payment.public_id
            db.session.commit()
        paid = emu.control(
            "POST", f"checkout/sessions/{session_id}/pay", {"card": "4242424242424242"}
        )
        assert paid["session"]["payment_status"] == "paid", paid
        with app.app_context():
            locked = lock_payment(payment_id)
            transition(
                locked,
                PaymentStatus.FAILED,
                source=StatusSource.RECON,
                reason="checkout session expired (test: PayBridge gave up first)",
                failure_code="expired",
                failure_message="checkout session expired",
            )
            db.session.commit()
            [event] = [
                e
                for e in get_provider().list_events([COMPLETED], since)
                if e.session is not None and e.session.id == session_id
            ]
            db.session.remove()
        return PaidAfterFailed(payment_id, public_id, session_id, event)

    return factory


@pytest.fixture
def paid_after_failed(app, failed_then_paid):
    """Make a FAILED payment whose session was paid at the emulator, with its open conflict."""

    def factory(merchant_id: int, amount: int = 2599, currency: str = "EUR") -> Conflicted:
        late = failed_then_paid(merchant_id, amount, currency)
        with app.app_context():
            row = process_event(late.event)
            assert row.outcome == "conflict", (row.outcome, row.detail)
            conflict = db.session.scalars(
                select(PaymentConflict).where(PaymentConflict.payment_id == late.payment_id)
            ).one()
            assert conflict.kind == PaymentConflict.KIND_PAID_AFTER_FAILED
            result = Conflicted(
                conflict_id=conflict.id,
                payment_id=late.payment_id,
                public_id=late.public_id,
                session_id=late.session_id,
                payment_intent_id=late.event.session.payment_intent_id,
                amount=amount,
                merchant_id=merchant_id,
            )
            assert result.payment_intent_id
            assert db.session.get(Payment, late.payment_id).status == "FAILED"
            db.session.remove()
        return result

    return factory


def psp_refunds(app, payment_intent_id: str) -> list:
    """Every refund of the payment intent at the emulator, as the PSP adapter reads them."""
    with app.app_context():
        return list(get_provider().list_refunds(payment_intent_id))


def conflict_row(app, conflict_id: int) -> PaymentConflict:
    with app.app_context():
        row = db.session.get(PaymentConflict, conflict_id)
        db.session.expunge(row)
        return row


def payment_row(app, payment_id: int) -> Payment:
    with app.app_context():
        row = db.session.get(Payment, payment_id)
        db.session.expunge(row)
        return row
