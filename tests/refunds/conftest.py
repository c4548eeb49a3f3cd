"""Fixtures for the refund tests: payments paid for real at the emulator, and helpers."""

from __future__ import annotations

import secrets
import time

import pytest

from app.extensions import db
from app.models import Notification, Payment, Refund, StatusSource
from app.payments.psp_facts import apply_session
from app.payments.service import create_payment
from app.psp import get_provider
from tests.notifications.conftest import Deliveries


@pytest.fixture
def emu(app, emulator):
    """The emulator, reset before and after (faults, endpoints, paused deliveries)."""
    emulator.control("POST", "reset")
    yield emulator
    emulator.control("POST", "reset")
    app.extensions.pop("paybridge_psp", None)


@pytest.fixture
def stripe_delivers(app, emu, live_server):
    """The emulator delivering every event to PayBridge's webhook endpoint over HTTP."""
    emu.control(
        "POST",
        "webhook_endpoints",
        {
            "url": live_server.url + "/webhooks/stripe",
            "secret": app.config["STRIPE_WEBHOOK_SECRETS"][0],
        },
    )
    return emu


@pytest.fixture
def fast_notifications(app):
    keys = ("NOTIFY_RETRY_SCHEDULE", "NOTIFY_TIMEOUT_SECONDS")
    saved = {key: app.config.get(key) for key in keys}
    app.config.update(NOTIFY_RETRY_SCHEDULE=[1, 1, 1], NOTIFY_TIMEOUT_SECONDS=2.0)
    yield app.config
    app.config.update(saved)


@pytest.fixture
def worker(app, fast_notifications):
    """The worker's delivery cycles, in this process."""
    return Deliveries(app)


@pytest.fixture
def paid_payment(app, emu):
    """A payment made through the real path: create_payment → paid at the emulator → the
    session applied (as the return page or reconciliation does). Returns its public id."""

    def factory(merchant_id: int, amount: int = 5000, currency: str = "EUR") -> str:
        with app.app_context():
            payment = create_payment(
                merchant_id,
                {
                    "merchant_reference": "order-" + secrets.token_hex(6),
                    "amount": amount,
                    "currency": currency,
                    "success_url": "https://shop.example/ok",
                    "cancel_url": "https://shop.example/cancel",
                },
                idempotency_key=None,
            )
            payment_id, session_id, public_id = (
                payment.id,
                payment.psp_session_id,
                payment.public_id,
            )
            db.session.commit()
        emu.control("POST", f"checkout/sessions/{session_id}/pay", {"card": "4242424242424242"})
        with app.app_context():
            session = get_provider().retrieve_checkout_session(session_id)
            apply_session(payment_id, session, source=StatusSource.RETURN)
            assert db.session.get(Payment, payment_id).status == "SUCCESS"
            db.session.remove()
        return public_id

    return factory


def refund_row(app, public_id: str) -> Refund:
    with app.app_context():
        refund = db.session.scalar(db.select(Refund).where(Refund.public_id == public_id))
        assert refund is not None, public_id
        db.session.expunge(refund)
        return refund


def payment_row(app, public_id: str) -> Payment:
    with app.app_context():
        payment = db.session.scalar(db.select(Payment).where(Payment.public_id == public_id))
        db.session.expunge(payment)
        return payment


def wait_for(predicate, *, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def refund_status_is(app, public_id: str, status: str):
    def check():
        return refund_row(app, public_id).status == status

    return check


def notifications_of(app, payment_public_id: str) -> list[Notification]:
    with app.app_context():
        rows = db.session.scalars(
            db.select(Notification)
            .join(Payment, Payment.id == Notification.payment_id)
            .where(Payment.public_id == payment_public_id)
            .order_by(Notification.id)
        ).all()
        for row in rows:
            db.session.expunge(row)
        return rows
