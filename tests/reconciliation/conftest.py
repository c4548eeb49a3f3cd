"""Reconciliation tests: real MariaDB, Redis and the Stripe emulator over HTTP.

Each test starts from a reset emulator (no sessions, no events, its clock back at real time, no
webhook endpoint: a webhook never comes unless a test sets one up) and a closed circuit breaker.
"""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
import stripe

from app.errors import PayBridgeError
from app.extensions import db
from app.models import Payment, utcnow
from app.psp.factory import get_provider
from app.reconciliation.ratelimit import add_call_observer, remove_call_observer
from tests.support import psp
from tests.support.factories import new_reference, register_payment

# Settings the tests change; restored after each test.
RECON_SETTINGS = {
    "RECON_STALE_AFTER_SECONDS": 0,
    "RECON_RATE_LIMIT_PER_SECOND": 500.0,
    "RECON_RATE_LIMIT_BACKOFF_SECONDS": 0.05,
    "RECON_RATE_LIMIT_MAX_RETRIES": 4,
    "RECON_LOCK_TTL_SECONDS": 30,
    "RECON_MAX_RUN_SECONDS": 60,
}


@pytest.fixture
def recon(app, emu):
    """An app context with fast reconciliation settings and a clean emulator."""
    saved = {key: app.config[key] for key in RECON_SETTINGS}
    app.config.update(RECON_SETTINGS)
    with app.app_context():
        get_provider().breaker.close()
        yield app
    app.config.update(saved)


@pytest.fixture
def stripe_client(emulator):
    """Talks to the emulator directly, to see what the PSP holds (not through PayBridge)."""
    return psp.stripe_client(emulator)


@pytest.fixture
def psp_calls():
    """(operation, unix time) of every PSP call reconciliation made."""
    calls: list[tuple[str, float]] = []

    def observe(operation: str, at: float) -> None:
        calls.append((operation, at))

    add_call_observer(observe)
    yield calls
    remove_call_observer(observe)


@pytest.fixture
def session_listings(monkeypatch):
    """Each session listing sent to the PSP, in order: its query and the ids it answered
    (the real HTTP requests, watched on their way through the SDK)."""
    seen: list[tuple[dict, list[str]]] = []
    send = stripe.RequestsClient.request

    def watched(self, method, url, headers, post_data=None):
        content, status, response_headers = send(self, method, url, headers, post_data)
        parts = urlsplit(url)
        if method.lower() == "get" and parts.path == "/v1/checkout/sessions" and status == 200:
            listed = [s["id"] for s in json.loads(content)["data"]]
            seen.append((dict(parse_qsl(parts.query)), listed))
        return content, status, response_headers

    monkeypatch.setattr(stripe.RequestsClient, "request", watched)
    return seen


@pytest.fixture
def new_payment(recon, merchant):
    """Create a payment through the payment core (registered at the emulator).

    With `expect_error` the PSP registration is expected to fail (a fault was injected): the
    payment stays CREATED and is returned all the same.
    """

    def factory(*, amount: int = 1999, expect_error: bool = False) -> Payment:
        reference = new_reference()
        params = {"merchant_reference": reference, "amount": amount, "description": "Recon order"}
        if expect_error:
            with pytest.raises(PayBridgeError):
                register_payment(merchant.id, **params)
            db.session.rollback()
            return db.session.execute(
                db.select(Payment).where(Payment.merchant_reference == reference)
            ).scalar_one()
        return register_payment(merchant.id, **params)

    return factory


def reload(payment_id: int) -> Payment:
    db.session.rollback()
    return db.session.execute(
        db.select(Payment).where(Payment.id == payment_id).execution_options(populate_existing=True)
    ).scalar_one()


def set_expired(payment_id: int, seconds_ago: int = 60) -> None:
    """PayBridge's own clock is real: move the payment's recorded session expiry into the past."""
    payment = reload(payment_id)
    payment.psp_expires_at = utcnow() - timedelta(seconds=seconds_ago)
    db.session.commit()


def outside_window(payment_id: int) -> None:
    """Make the payment older than the wide pass's window (RECON_LOOKBACK_HOURS): no listing
    of that window stands in for its own retrieve when it is the only kind of stale payment."""
    from flask import current_app

    payment = reload(payment_id)
    hours = current_app.config["RECON_LOOKBACK_HOURS"] + 1
    payment.created_at = utcnow() - timedelta(hours=hours)
    db.session.commit()
