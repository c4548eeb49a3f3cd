"""The whole loop: paid at the emulator, learned through its webhook, one signed notification."""

from __future__ import annotations

import pytest
from standardwebhooks import Webhook

from app.extensions import db
from app.models import Notification, Payment
from tests.notifications.conftest import status_is
from tests.support.factories import FINAL_NEWS
from tests.support.psp import pay_session
from tests.support.rows import get_row
from tests.support.waiting import wait_until


def payment_status(app, payment_id: int, status: str) -> None:
    wait_until(
        lambda: db.session.get(Payment, payment_id).status == status,
        what=f"the payment to be {status}",
        timeout=15,
        app=app,
        details=lambda: f"it is {get_row(app, Payment, payment_id).status}",
    )


@pytest.mark.parametrize(
    ("pay", "settle", "final", "event_type"),
    [
        ({"card": "4242424242424242"}, False, "SUCCESS", "payment.succeeded"),
        ({"iban": "DE62370400440532013001"}, True, "FAILED", "payment.failed"),
    ],
    ids=["card-succeeds", "delayed-method-fails"],
)
def test_payment_outcome_reaches_the_client_once_signed(
    app,
    make_merchant,
    registered_payment,
    receiver,
    stripe_delivers,
    worker,
    pay,
    settle,
    final,
    event_type,
):
    merchant, _ = make_merchant(notify_url=receiver.url)
    payment = registered_payment(merchant.id, amount=4200)
    payment_id, session_id = payment.id, payment.session_id
    pay_session(stripe_delivers, session_id, **pay)
    if settle:
        payment_status(app, payment_id, "PENDING")
        stripe_delivers.control("POST", f"checkout/sessions/{session_id}/settle", {})
    payment_status(app, payment_id, final)
    with app.app_context():
        [notification_id] = db.session.scalars(
            db.select(Notification.id).where(Notification.payment_id == payment_id, FINAL_NEWS)
        ).all()

    worker.run_until(status_is(app, notification_id, "delivered"), what="delivery")
    # Stripe delivering the same events again changes nothing and sends nothing more.
    first = stripe_delivers.control("GET", "deliveries")["data"]
    for event_id in {d["event_id"] for d in first}:
        stripe_delivers.control("POST", f"events/{event_id}/redeliver")

    def all_delivered_twice():
        deliveries = stripe_delivers.control("GET", "deliveries")["data"]
        return len(deliveries) == 2 * len(first) and all(
            d["status"] == "succeeded" for d in deliveries
        )

    wait_until(
        all_delivered_twice,
        what="every event delivered again",
        timeout=15,
        details=lambda: stripe_delivers.control("GET", "deliveries")["data"],
    )
    worker.run_once()

    [request] = receiver.requests
    body = Webhook(merchant.signing_secret).verify(request.body, request.headers)
    assert body["type"] == event_type
    assert body["data"]["id"] and body["data"]["status"] == final
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Notification.id)).where(FINAL_NEWS)) == 1
