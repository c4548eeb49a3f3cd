"""A renewal is a payment like any other: refunding it refunds that charge at the PSP (its own
payment intent), never the subscription's first one."""

from __future__ import annotations

from app.psp import get_provider
from app.tasks.subscriptions import learn_renewal_payment_intents
from tests.subscriptions.conftest import payments_of, renew
from tests.support.api import auth_headers


def test_refunding_a_renewal_refunds_that_charge(
    app, client, make_merchant, stripe_delivers, buy_subscription
):
    merchant, key = make_merchant()
    first_id, sub = buy_subscription(merchant.id, amount=1500)
    renew(app, stripe_delivers, first_id, sub)
    assert payments_of(app, first_id)[1]["psp_payment_intent_id"] is None  # not in the event
    with app.app_context():  # the worker's periodic subscription upkeep
        assert learn_renewal_payment_intents() == 1
        assert learn_renewal_payment_intents() == 0  # nothing left: idempotent
    renewal = payments_of(app, first_id)[1]
    assert renewal["psp_payment_intent_id"]

    response = client.post(
        f"/api/v1/payments/{renewal['public_id']}/refunds",
        json={"amount": 500},
        headers=auth_headers(key, idempotency_key="refund-renewal-1"),
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    with app.app_context():
        at_psp = get_provider().retrieve_refund(body["psp_refund_id"])
    assert at_psp.payment_intent_id == renewal["psp_payment_intent_id"]
    assert at_psp.amount == 500
    first = client.get(
        f"/api/v1/payments/{payments_of(app, first_id)[0]['public_id']}",
        headers=auth_headers(key),
    ).get_json()
    assert first["refunded_amount"] == 0


def test_a_renewal_refunded_before_its_intent_is_known_refunds_that_charge(
    app, client, make_merchant, stripe_delivers, buy_subscription
):
    """Invoice events carry no payment intent; the refund asks the PSP for the renewal's own."""
    from app.extensions import db
    from app.models import Payment

    merchant, key = make_merchant()
    first_id, sub = buy_subscription(merchant.id, amount=1500)
    renewal = renew(app, stripe_delivers, first_id, sub)[1]
    with app.app_context():  # as if the job that fetches the intent had not run yet
        db.session.get(Payment, renewal["id"]).psp_payment_intent_id = None
        db.session.commit()

    response = client.post(
        f"/api/v1/payments/{renewal['public_id']}/refunds",
        json={"amount": 300},
        headers=auth_headers(key, idempotency_key="refund-renewal-early"),
    )
    assert response.status_code == 201, response.get_json()
    with app.app_context():
        at_psp = get_provider().retrieve_refund(response.get_json()["psp_refund_id"])
        intent = db.session.get(Payment, renewal["id"]).psp_payment_intent_id
        first_intent = db.session.get(Payment, first_id).psp_payment_intent_id
    assert intent and at_psp.payment_intent_id == intent
    assert intent != first_intent
