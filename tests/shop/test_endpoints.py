"""The demo shop's two notification endpoints: `init` creates them through PayBridge's API
(orders: payment.*; refunds: refund.* and dispute.*), each with its own path and secret, once;
PayBridge then sends each only its types, and the shop verifies each with its own secret."""

from __future__ import annotations

import json

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.models import Notification, NotificationAttempt, NotificationDelivery, NotificationEndpoint
from demo_shop import create_app
from demo_shop.models import Refund
from tests.shop.support import sign
from tests.shop.test_notify import notification, pay, paybridge_api
from tests.support.delivery import deliver_due_notifications
from tests.support.factories import endpoints_of
from tests.support.waiting import wait_until


def _shop_endpoints(app, shop) -> dict[str, NotificationEndpoint]:
    with app.app_context():
        found = endpoints_of(shop.merchant_id)
        db.session.expunge_all()
    return {e.url.rsplit("/", 1)[1]: e for e in found}


def test_init_creates_the_two_endpoints_through_the_api_once(app, shop, tmp_path):
    endpoints = _shop_endpoints(app, shop)
    assert sorted(endpoints) == ["orders", "refunds"]
    orders, refunds = endpoints["orders"], endpoints["refunds"]
    assert orders.url == shop.notify_url and refunds.url == shop.refunds_url
    assert orders.event_types == ["payment.succeeded", "payment.failed"]
    assert refunds.event_types == [
        "refund.succeeded",
        "refund.failed",
        "dispute.created",
        "dispute.updated",
        "dispute.closed",
    ]
    assert not orders.livemode and not refunds.livemode  # the shop's key is a test key
    # Each with its own secret, which the shop kept (PayBridge showed it once).
    assert orders.signing_secret == shop.signing_secret
    assert refunds.signing_secret == shop.refunds_signing_secret != shop.signing_secret
    stored = json.loads((tmp_path / "demo_shop.json").read_text())
    assert stored["PAYBRIDGE_ORDERS_ENDPOINT_ID"] == orders.public_id
    assert stored["PAYBRIDGE_REFUNDS_ENDPOINT_ID"] == refunds.public_id

    # Run again (as scripts/demo.sh does on every start): nothing new at PayBridge.
    again = (
        create_app(
            {"PAYBRIDGE_URL": app.config["PUBLIC_BASE_URL"], "PUBLIC_URL": shop.url},
            instance_path=str(tmp_path),
        )
        .test_cli_runner()
        .invoke(args=["init"])
    )
    assert again.exit_code == 0, again.output
    assert f"notification endpoint orders: {orders.public_id}" in again.output
    assert len(_shop_endpoints(app, shop)) == 2


def test_each_endpoint_verifies_with_its_own_secret_only(app, shop, shopper, products):
    shopper.buy(products[0][0])
    [order] = shop.orders()
    body, headers = sign(shop.refunds_signing_secret, "msg_wrong", notification(app, shop, order))
    wrong = requests.post(shop.notify_url, data=body, headers=headers, timeout=10)
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "WEBHOOK_SIGNATURE_INVALID"
    assert shop.order(order.id).status != "PAID"
    body, headers = sign(shop.signing_secret, "msg_right", notification(app, shop, order))
    right = requests.post(shop.notify_url, data=body, headers=headers, timeout=10)
    assert right.json()["outcome"] == "applied" and shop.order(order.id).status == "PAID"
    assert requests.post(f"{shop.url}/notify/nowhere", data=body, timeout=10).status_code == 404


@pytest.mark.slow
def test_paybridge_sends_each_of_the_shops_endpoints_only_its_types(
    app, shop, shopper, products, emulator
):
    shopper.buy(products[0][0])
    [order] = shop.orders()
    pay(app, shop, emulator, order)
    paybridge_api(
        app, shop, "POST", f"/payments/{order.payment_id}/refunds", idempotency_key="refund-1"
    )
    wait_until(
        lambda: deliver_due_notifications(app) or shop.count(Refund),
        what="the refund at the shop",
        timeout=20.0,
    )
    assert ("refund.succeeded", "applied") in shop.received()

    endpoints = _shop_endpoints(app, shop)
    with app.app_context():
        delivered = db.session.execute(
            select(
                NotificationDelivery.endpoint_id, Notification.event_type, NotificationAttempt.url
            )
            .join(Notification, Notification.id == NotificationDelivery.notification_id)
            .join(NotificationAttempt, NotificationAttempt.delivery_id == NotificationDelivery.id)
            .where(Notification.merchant_id == shop.merchant_id)
            .order_by(NotificationAttempt.id)
        ).all()
    by_endpoint: dict[int, list[str]] = {}
    for endpoint_id, event_type, url in delivered:
        by_endpoint.setdefault(endpoint_id, []).append(event_type)
        assert url == next(e.url for e in endpoints.values() if e.id == endpoint_id)
    assert by_endpoint == {
        endpoints["orders"].id: ["payment.succeeded"],
        endpoints["refunds"].id: ["refund.succeeded"],
    }
