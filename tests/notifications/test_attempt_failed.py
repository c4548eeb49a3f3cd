"""payment.attempt_failed: a declined try on the hosted page, told once to the endpoints that
asked for it, through the emulator's real webhooks and a real receiver."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook

from app.extensions import db
from app.models import Notification
from tests.support.factories import add_endpoint
from tests.support.psp import pay_session, stripe_client, wait_for_deliveries
from tests.support.receiver import Receiver
from tests.support.waiting import wait_for_payment_status

INSUFFICIENT_FUNDS = "4000000000009995"


@pytest.fixture
def legacy_receiver():
    r = Receiver().start()
    yield r
    r.stop()


def _attempt_failed_count(app, payment_id: int) -> int:
    with app.app_context():
        return db.session.scalar(
            select(func.count(Notification.id)).where(
                Notification.payment_id == payment_id,
                Notification.event_type == "payment.attempt_failed",
            )
        )


def test_a_declined_attempt_is_told_once_to_the_endpoints_that_asked(
    app, make_merchant, registered_payment, stripe_delivers, receiver, legacy_receiver, worker
):
    # The migrated endpoint (a notify_url's, today's types) does not get the new type.
    merchant, _ = make_merchant(notify_url=legacy_receiver.url)
    with app.app_context():
        secret = add_endpoint(
            merchant.id, receiver.url, ["payment.attempt_failed", "payment.succeeded"]
        ).signing_secret
        db.session.commit()
    payment = registered_payment(merchant.id, amount=2500)

    declined = pay_session(stripe_delivers, payment.session_id, card=INSUFFICIENT_FUNDS)
    assert declined["declined"] is True
    wait_for_deliveries(stripe_delivers, event_type="payment_intent.payment_failed", count=1)
    pay_session(stripe_delivers, payment.session_id, card="4242424242424242")
    wait_for_payment_status(app, payment.id, "SUCCESS")
    worker.run_until(lambda: len(receiver.requests) >= 2, what="both notifications delivered")

    bodies = [Webhook(secret).verify(r.body, r.headers) for r in receiver.requests]
    assert [b["type"] for b in bodies] == ["payment.attempt_failed", "payment.succeeded"]
    told = bodies[0]["data"]
    assert (told["id"], told["status"]) == (payment.public_id, "INITIATED")
    assert told["attempt"]["object"] == "payment_attempt"
    assert (told["attempt"]["outcome"], told["attempt"]["decline_code"]) == (
        "failed",
        "insufficient_funds",
    )
    assert told["attempt"]["card_last4"] == "9995"
    assert told["attempt"]["psp_charge_id"].startswith("ch_")
    assert "attempt" not in bodies[1]["data"]

    # Stripe delivering the decline again is no new attempt: nothing more is sent.
    [failed_event] = stripe_client(stripe_delivers).v1.events.list(
        {"type": "payment_intent.payment_failed"}
    )
    stripe_delivers.control("POST", f"events/{failed_event.id}/redeliver")
    wait_for_deliveries(stripe_delivers, event_type="payment_intent.payment_failed", count=2)
    worker.run_until(
        lambda: [Webhook(merchant.signing_secret).verify(r.body, r.headers)["type"]
                 for r in legacy_receiver.requests] == ["payment.succeeded"],
        what="the migrated endpoint told of the success only",
    )  # fmt: skip
    worker.run_once()
    assert len(receiver.requests) == 2
    assert _attempt_failed_count(app, payment.id) == 1
