"""The whole loop: paid at the emulator, learned through its webhook, one signed notification."""

from __future__ import annotations

import pytest
from standardwebhooks import Webhook

from app.extensions import db
from app.models import Notification, Payment, PaymentAttempt
from app.tasks.payments import learn_payment_methods
from tests.notifications.conftest import status_is
from tests.support.factories import FINAL_NEWS
from tests.support.psp import pay_session, stripe_client, wait_for_deliveries
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


def _paid_notification(app, worker, payment_id: int) -> int:
    with app.app_context():
        [notification_id] = db.session.scalars(
            db.select(Notification.id).where(Notification.payment_id == payment_id, FINAL_NEWS)
        ).all()
    worker.run_until(status_is(app, notification_id, "delivered"), what="delivery")
    return notification_id


def _attempts(app, payment_id: int) -> list[tuple[str, str | None]]:
    with app.app_context():
        rows = db.session.execute(
            db.select(PaymentAttempt.outcome, PaymentAttempt.psp_charge_id).where(
                PaymentAttempt.payment_id == payment_id
            )
        ).all()
        return [tuple(r) for r in rows]


def test_payment_succeeded_names_the_card_its_charge_event_told_first(
    app, make_merchant, registered_payment, receiver, stripe_delivers, worker
):
    merchant, _ = make_merchant(notify_url=receiver.url)
    payment = registered_payment(merchant.id, amount=4200)
    pay_session(stripe_delivers, payment.session_id, card="5555555555554444")
    payment_status(app, payment.id, "SUCCESS")
    _paid_notification(app, worker, payment.id)

    [request] = receiver.requests
    body = Webhook(merchant.signing_secret).verify(request.body, request.headers)
    assert body["type"] == "payment.succeeded"
    method = body["data"]["payment_method"]
    assert (method["type"], method["brand"], method["last4"]) == ("card", "mastercard", "4444")
    [(outcome, charge_id)] = _attempts(app, payment.id)
    assert outcome == "succeeded" and charge_id.startswith("ch_")
    with app.app_context():
        assert learn_payment_methods() == 0  # nothing left for the worker to ask Stripe


def test_a_charge_event_after_the_success_still_teaches_the_method_once(
    app, make_merchant, registered_payment, receiver, stripe_delivers, worker, client
):
    merchant, key = make_merchant(notify_url=receiver.url)
    payment = registered_payment(merchant.id, amount=4200)
    # The charge's event is lost on its way, then comes again after the payment moved.
    drop = {"kind": "webhook_drop", "event_type": "charge.succeeded"}
    stripe_delivers.control("POST", "faults", drop)
    pay_session(stripe_delivers, payment.session_id)
    payment_status(app, payment.id, "SUCCESS")
    _paid_notification(app, worker, payment.id)
    [request] = receiver.requests
    body = Webhook(merchant.signing_secret).verify(request.body, request.headers)
    assert body["type"] == "payment.succeeded" and body["data"]["payment_method"] is None

    [charge_event] = stripe_client(stripe_delivers).v1.events.list({"type": "charge.succeeded"})
    for _ in range(2):  # late, and once more
        stripe_delivers.control("POST", f"events/{charge_event.id}/redeliver")
    wait_for_deliveries(stripe_delivers, event_type="charge.succeeded", count=2)
    api = client.get(
        f"/api/v1/payments/{payment.public_id}", headers={"Authorization": f"Bearer {key}"}
    ).get_json()
    assert (api["payment_method"]["brand"], api["payment_method"]["last4"]) == ("visa", "4242")
    assert [a["outcome"] for a in api["attempts"]] == ["succeeded"]
    assert _attempts(app, payment.id) == [("succeeded", charge_event.data.object.id)]
    with app.app_context():
        assert learn_payment_methods() == 0
    worker.run_once()
    assert len(receiver.requests) == 1  # no notification announces the late method
