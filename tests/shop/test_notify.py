"""The shop's notify endpoint: only PayBridge's signature counts; duplicates and stale news drop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Merchant
from app.shop.models import Order, OrderItem, OrderStatus, ReceivedNotification, ShopCustomer
from tests.shop.support import sign


@pytest.fixture
def order_id(app, shop, products):
    """An unpaid order of a shopper, as checkout leaves it (payment pay_shoptest…)."""
    with app.app_context():
        customer = ShopCustomer(email="lin@example.com", name="Lin", password_hash="x")
        order = Order(
            customer=customer,
            checkout_token="tok",
            total_amount=products[0][1],
            currency="EUR",
            email=customer.email,
            payment_id="pay_shoptest000000000000001",
            payment_status_version=2,
            items=[
                OrderItem(
                    product_id=products[0][0], name="p", unit_price=products[0][1], quantity=1
                )
            ],
        )
        db.session.add(order)
        db.session.commit()
        return order.id


@pytest.fixture
def secret(app, shop) -> str:
    with app.app_context():
        return db.session.get(Merchant, shop.merchant_id).signing_secret


def notification(order_id: int, status: str = "SUCCESS", version: int = 3, **data) -> dict:
    event = {"SUCCESS": "payment.succeeded", "FAILED": "payment.failed"}.get(status, "other")
    return {
        "id": "msg_x",
        "type": event,
        "timestamp": "2026-11-22T03:00:00Z",
        "data": {
            "id": "pay_shoptest000000000000001",
            "object": "payment",
            "merchant_reference": f"order-{order_id}",
            "status": status,
            "status_version": version,
            "failure_message": data.pop("failure_message", None),
            **data,
        },
    }


def post(client, body, headers):
    return client.post("/shop/notify", data=body, headers=headers)


def order_state(app, order_id):
    with app.app_context():
        order = db.session.get(Order, order_id)
        state = (order.status, order.payment_status_version, order.failure_message)
        db.session.remove()
        return state


def test_a_signed_success_notification_marks_the_order_paid(app, client, order_id, secret):
    response = post(client, *sign(secret, "msg_ok1", notification(order_id)))

    assert response.status_code == 200
    assert response.get_json() == {"received": True, "outcome": "applied"}
    assert order_state(app, order_id) == (OrderStatus.PAID, 3, None)


def test_a_signed_failure_notification_marks_the_order_failed_with_the_reason(
    app, client, order_id, secret
):
    payload = notification(order_id, "FAILED", failure_message="Your card was declined.")

    assert post(client, *sign(secret, "msg_f1", payload)).status_code == 200

    assert order_state(app, order_id) == (OrderStatus.FAILED, 3, "Your card was declined.")


@pytest.mark.parametrize(
    "tamper",
    ["wrong_secret", "changed_body", "missing_signature", "garbage_signature", "old_timestamp"],
)
def test_a_notification_not_signed_by_paybridge_is_refused_and_changes_nothing(
    app, client, order_id, secret, tamper
):
    other_secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    when = datetime.now(UTC) - timedelta(minutes=10) if tamper == "old_timestamp" else None
    signer = other_secret if tamper == "wrong_secret" else secret
    body, headers = sign(signer, "msg_bad", notification(order_id), when)
    if tamper == "changed_body":
        body = body.replace('"SUCCESS"', '"FAILED"')
    if tamper == "missing_signature":
        del headers["webhook-signature"]
    if tamper == "garbage_signature":
        headers["webhook-signature"] = "not-a-signature"

    response = post(client, body, headers)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "WEBHOOK_SIGNATURE_INVALID"
    assert order_state(app, order_id) == (OrderStatus.PENDING_PAYMENT, 2, None)
    with app.app_context():
        assert db.session.execute(select(ReceivedNotification)).first() is None


def test_a_signed_body_that_is_not_a_notification_is_refused(app, client, order_id, secret):
    body, headers = sign(secret, "msg_weird", {"hello": "world"})

    response = post(client, body, headers)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "WEBHOOK_PAYLOAD_INVALID"


def test_the_same_webhook_id_twice_is_applied_once(app, client, order_id, secret):
    first = post(client, *sign(secret, "msg_dup", notification(order_id)))
    # The retry of the same message, after the shop changed state by other means.
    with app.app_context():
        db.session.get(Order, order_id).status = OrderStatus.PENDING_PAYMENT
        db.session.commit()
    again = post(client, *sign(secret, "msg_dup", notification(order_id)))

    assert first.get_json()["outcome"] == "applied"
    assert again.status_code == 200
    assert again.get_json()["outcome"] == "duplicate"
    assert order_state(app, order_id)[0] == OrderStatus.PENDING_PAYMENT
    with app.app_context():
        assert len(db.session.execute(select(ReceivedNotification)).all()) == 1


def test_a_stale_status_version_is_ignored(app, client, order_id, secret):
    newer = post(client, *sign(secret, "msg_new", notification(order_id, "FAILED", version=4)))
    older = post(client, *sign(secret, "msg_old", notification(order_id, "SUCCESS", version=3)))

    assert newer.get_json()["outcome"] == "applied"
    assert older.status_code == 200
    assert older.get_json()["outcome"] == "stale"
    assert order_state(app, order_id)[:2] == (OrderStatus.FAILED, 4)


def test_a_notification_signed_with_the_previous_secret_during_rotation_is_accepted(
    app, client, order_id, shop
):
    with app.app_context():
        merchant = db.session.get(Merchant, shop.merchant_id)
        old = merchant.signing_secret
        merchant.rotate_signing_secret()
        db.session.commit()

    response = post(client, *sign(old, "msg_rot", notification(order_id)))

    assert response.status_code == 200
    assert order_state(app, order_id)[0] == OrderStatus.PAID


def test_a_notification_for_an_order_the_shop_does_not_have_is_acknowledged_and_recorded(
    app, client, order_id, secret
):
    response = post(client, *sign(secret, "msg_unknown", notification(order_id + 1000)))

    assert response.status_code == 200
    assert response.get_json()["outcome"] == "unknown_order"
    assert order_state(app, order_id)[0] == OrderStatus.PENDING_PAYMENT


def test_a_notification_naming_another_payment_does_not_touch_the_order(
    app, client, order_id, secret
):
    payload = notification(order_id)
    payload["data"]["id"] = "pay_someoneelse000000000001"

    response = post(client, *sign(secret, "msg_other", payload))

    assert response.get_json()["outcome"] == "ignored"
    assert order_state(app, order_id)[0] == OrderStatus.PENDING_PAYMENT


def test_notify_does_not_need_a_csrf_token_but_still_needs_a_signature(client, shop):
    response = client.post("/shop/notify", json={"type": "payment.succeeded", "data": {}})

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "WEBHOOK_SIGNATURE_INVALID"
