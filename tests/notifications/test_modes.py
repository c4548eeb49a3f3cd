"""Notifications say their mode: a client app receives test and live ones at one endpoint and
tells them apart by `livemode`, at the top as on Stripe's events and in the object it carries."""

from __future__ import annotations

import json
import secrets
import time

import pytest
from standardwebhooks import Webhook

from app.extensions import db
from app.models import Notification, PaymentStatus, Refund
from tests.notifications.conftest import status_is
from tests.support.factories import FINAL_NEWS, PaymentRef, record_payment
from tests.webhooks.helpers import new_event_id, stripe_event_body, stripe_headers


def signed_post(client, event: dict, *, livemode: bool):
    """The event as that mode's Stripe endpoint sends it to PayBridge."""
    body = json.dumps(event).encode()
    mode = "LIVE" if livemode else "TEST"
    secret = client.application.config[f"STRIPE_{mode}_WEBHOOK_SECRETS"][0]
    response = client.post("/webhooks/stripe", data=body, headers=stripe_headers(body, secret))
    assert response.get_json() == {"received": True, "outcome": "applied"}


def received(receiver, merchant, count: int) -> list[dict]:
    """The notifications the client app got, each verified with the merchant's secret."""
    webhook = Webhook(merchant.signing_secret)
    return [webhook.verify(r.body, r.headers) for r in receiver.wait_for(count)]


@pytest.mark.parametrize("livemode", [False, True], ids=["test", "live"])
def test_a_payments_notification_says_its_mode(
    app, client, make_merchant, receiver, worker, livemode
):
    merchant, _ = make_merchant(notify_url=receiver.url)
    with app.app_context():
        payment = record_payment(merchant.id, PaymentStatus.INITIATED, livemode=livemode)
        db.session.commit()
        ref = PaymentRef.of(payment)
    event = json.loads(stripe_event_body("checkout.session.completed", ref, livemode=livemode))
    event["livemode"] = livemode

    signed_post(client, event, livemode=livemode)
    with app.app_context():
        notification_id = db.session.scalar(
            db.select(Notification.id).where(Notification.payment_id == ref.id, FINAL_NEWS)
        )
    worker.run_until(status_is(app, notification_id, "delivered"), what="delivery")

    [message] = received(receiver, merchant, 1)
    assert message["type"] == "payment.succeeded"
    assert message["livemode"] is livemode
    assert (message["data"]["id"], message["data"]["livemode"]) == (ref.public_id, livemode)


def test_a_live_refunds_notification_says_live_in_the_refund_and_its_payment(
    app, client, make_merchant, receiver, worker
):
    merchant, _ = make_merchant(notify_url=receiver.url)
    with app.app_context():
        payment = record_payment(merchant.id, PaymentStatus.SUCCESS, livemode=True, amount=1000)
        refund = Refund(
            payment_id=payment.id,
            merchant_id=merchant.id,
            amount=400,
            currency="EUR",
            status="pending",
            psp_refund_id="re_" + secrets.token_hex(8),
        )
        db.session.add(refund)
        db.session.commit()
        payment_pk, refund_public_id, psp_refund_id = (
            payment.id,
            refund.public_id,
            refund.psp_refund_id,
        )
    event = {
        "id": new_event_id(),
        "object": "event",
        "created": int(time.time()),
        "livemode": True,
        "type": "refund.updated",
        "data": {"object": {"id": psp_refund_id, "object": "refund", "status": "succeeded",
                            "amount": 400, "currency": "eur", "metadata": {}}},
    }  # fmt: skip

    signed_post(client, event, livemode=True)
    with app.app_context():
        notification_id = db.session.scalar(
            db.select(Notification.id).where(
                Notification.payment_id == payment_pk,
                FINAL_NEWS,
                Notification.event_type == "refund.succeeded",
            )
        )
    worker.run_until(status_is(app, notification_id, "delivered"), what="delivery")

    refund_message = next(
        m for m in received(receiver, merchant, 2) if m["type"] == "refund.succeeded"
    )
    assert refund_message["livemode"] is True
    data = refund_message["data"]
    assert (data["id"], data["livemode"]) == (refund_public_id, True)
    assert data["payment"]["livemode"] is True
    assert [r["livemode"] for r in data["payment"]["refunds"]] == [True]
