"""The whole loop: paid at the emulator, learned through its webhook, one signed notification."""

from __future__ import annotations

import secrets
import time

import pytest
from standardwebhooks import Webhook

from app.extensions import db
from app.models import Notification, Payment
from app.payments.service import create_payment
from tests.notifications.conftest import status_is


@pytest.fixture
def stripe_delivers(app, emulator, live_server):
    """The emulator, reset, delivering every event to PayBridge's webhook endpoint."""
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
    app.extensions.pop("paybridge_psp", None)


def initiated_payment(app, merchant_id: int) -> tuple[int, str]:
    with app.app_context():
        payment = create_payment(
            merchant_id,
            {
                "merchant_reference": "order-" + secrets.token_hex(6),
                "amount": 4200,
                "currency": "EUR",
                "success_url": "https://shop.example/ok",
                "cancel_url": "https://shop.example/cancel",
            },
            idempotency_key=None,
        )
        return payment.id, payment.psp_session_id


def payment_status(app, payment_id: int, status: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with app.app_context():
            current = db.session.get(Payment, payment_id).status
            db.session.remove()
        if current == status:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"payment is {current}, expected {status}")
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("pay", "settle", "final", "event_type"),
    [
        ({"card": "4242424242424242"}, False, "SUCCESS", "payment.succeeded"),
        ({"iban": "DE62370400440532013001"}, True, "FAILED", "payment.failed"),
    ],
    ids=["card-succeeds", "delayed-method-fails"],
)
def test_payment_outcome_reaches_the_client_once_signed(
    app, make_merchant, receiver, stripe_delivers, worker, pay, settle, final, event_type
):
    merchant, _ = make_merchant(notify_url=receiver.url)
    payment_id, session_id = initiated_payment(app, merchant.id)
    stripe_delivers.control("POST", f"checkout/sessions/{session_id}/pay", pay)
    if settle:
        payment_status(app, payment_id, "PENDING")
        stripe_delivers.control("POST", f"checkout/sessions/{session_id}/settle", {})
    payment_status(app, payment_id, final)
    with app.app_context():
        [notification_id] = db.session.scalars(
            db.select(Notification.id).where(Notification.payment_id == payment_id)
        ).all()

    worker.run_until(status_is(app, notification_id, "delivered"), what="delivery")
    # Stripe delivering the same events again changes nothing and sends nothing more.
    first = stripe_delivers.control("GET", "deliveries")["data"]
    for event_id in {d["event_id"] for d in first}:
        stripe_delivers.control("POST", f"events/{event_id}/redeliver")
    deadline = time.monotonic() + 15
    while True:
        deliveries = stripe_delivers.control("GET", "deliveries")["data"]
        if len(deliveries) == 2 * len(first) and all(
            d["status"] == "succeeded" for d in deliveries
        ):
            break
        assert time.monotonic() < deadline, deliveries
        time.sleep(0.05)
    worker.run_once()

    [request] = receiver.requests
    body = Webhook(merchant.signing_secret).verify(request.body, request.headers)
    assert body["type"] == event_type
    assert body["data"]["id"] and body["data"]["status"] == final
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Notification.id))) == 1
