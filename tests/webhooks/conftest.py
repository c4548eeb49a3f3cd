"""Fixtures for webhook tests: a merchant, and payments stored as the payment core leaves them."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import Payment, PaymentStatus, StatusSource, utcnow
from app.payments.state import record_creation, transition
from tests.webhooks.helpers import CANCEL_URL, SUCCESS_URL, new_session_id


@pytest.fixture
def merchant(make_merchant):
    merchant, _raw_key = make_merchant("Webhook Shop", "http://127.0.0.1:9/notify")
    return merchant


@pytest.fixture
def make_payment(app, merchant):
    """Store a payment in a given status, as the payment core would have left it."""

    def factory(
        status: PaymentStatus = PaymentStatus.INITIATED,
        *,
        amount: int = 1999,
        currency: str = "EUR",
        session_id: str | None = None,
    ) -> dict:
        with app.app_context():
            payment = Payment(
                merchant_id=merchant.id,
                merchant_reference="order-" + secrets.token_hex(6),
                amount=amount,
                currency=currency,
                success_url=SUCCESS_URL,
                cancel_url=CANCEL_URL,
                metadata_={},
            )
            record_creation(payment)
            db.session.add(payment)
            db.session.flush()
            sid = session_id or new_session_id()
            if status != PaymentStatus.CREATED:
                payment.psp_session_id = sid
                payment.checkout_url = f"https://checkout.example/c/pay/{sid}"
                payment.psp_expires_at = utcnow() + timedelta(hours=1)
                transition(payment, PaymentStatus.INITIATED, source=StatusSource.API)
            if status == PaymentStatus.PENDING:
                transition(payment, status, source=StatusSource.WEBHOOK)
            if status == PaymentStatus.FAILED:
                transition(
                    payment,
                    status,
                    source=StatusSource.RECON,
                    failure_code="expired",
                    failure_message="checkout session expired",
                )
            if status == PaymentStatus.SUCCESS:
                transition(payment, status, source=StatusSource.WEBHOOK)
            db.session.commit()
            return {
                "id": payment.id,
                "public_id": payment.public_id,
                "session_id": sid,
                "reference": payment.merchant_reference,
                "amount": amount,
                "currency": currency,
            }

    return factory
