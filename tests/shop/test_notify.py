"""POST /notify: only PayBridge's signature counts; repeats and stale news change nothing; what
PayBridge tells (payments, refunds, a subscription's renewals) shows on the shopper's order.

The first half sends hand-made notifications, signed with the merchant's real secret, to the
shop's real server; the second half lets PayBridge itself deliver them (its outbox, over HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from app.extensions import db
from demo_shop.models import ReceivedNotification, Refund
from tests.shop.support import deliver_until_order_final, sign
from tests.support.api import auth_headers
from tests.support.delivery import deliver_due_notifications
from tests.support.factories import endpoints_of
from tests.support.payflow import SUCCESS_CARD
from tests.support.waiting import wait_until

OTHER_SECRET = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"


def paybridge_api(app, shop, method: str, path: str, json=None, idempotency_key=None) -> dict:
    """A call to PayBridge's API with the shop merchant's key (the merchant's other tools)."""
    response = requests.request(
        method,
        f"{app.config['PUBLIC_BASE_URL']}/api/v1{path}",
        json=json,
        headers=auth_headers(shop.api_key, idempotency_key),
        timeout=15,
    )
    assert response.ok, response.text
    return response.json()


@pytest.fixture
def order(app, shop, shopper, products):
    """An unpaid order as checkout leaves it; its payment is INITIATED, status_version 2."""
    shopper.buy(products[0][0])
    [placed] = shop.orders()
    assert (placed.payment_status, placed.payment_status_version) == ("INITIATED", 2)
    return placed


def notification(app, shop, order, status: str = "SUCCESS", version: int = 3, **changes) -> dict:
    """A `payment.*` notification for the order's real payment, as PayBridge would word it."""
    payment = paybridge_api(app, shop, "GET", f"/payments/{order.payment_id}")
    payment.update(status=status, status_version=version, checkout_url=None, **changes)
    event = {"SUCCESS": "payment.succeeded", "FAILED": "payment.failed"}[status]
    return {"id": "msg_x", "type": event, "timestamp": "2026-11-22T03:00:00Z", "data": payment}


def post(shop, body, headers) -> requests.Response:
    return requests.post(shop.notify_url, data=body, headers=headers, timeout=10)


def state(shop, order_id: int) -> tuple:
    order = shop.order(order_id)
    return order.status, order.payment_status_version, order.failure_message


def test_a_signed_success_notification_marks_the_order_paid(app, shop, order):
    response = post(shop, *sign(shop.signing_secret, "msg_ok1", notification(app, shop, order)))

    assert response.status_code == 200
    assert response.json() == {"received": True, "outcome": "applied"}
    assert state(shop, order.id) == ("PAID", 3, None)
    assert shop.received() == [("payment.succeeded", "applied")]


def test_a_signed_failure_notification_marks_the_order_failed_with_the_reason(app, shop, order):
    payload = notification(app, shop, order, "FAILED", failure_message="Your card was declined.")

    assert post(shop, *sign(shop.signing_secret, "msg_f1", payload)).status_code == 200

    assert state(shop, order.id) == ("FAILED", 3, "Your card was declined.")


@pytest.mark.parametrize(
    "tamper",
    ["wrong_secret", "changed_body", "missing_signature", "garbage_signature", "old_timestamp"],
)
def test_a_notification_not_signed_by_paybridge_is_refused_and_changes_nothing(
    app, shop, order, tamper
):
    when = datetime.now(UTC) - timedelta(minutes=10) if tamper == "old_timestamp" else None
    signer = OTHER_SECRET if tamper == "wrong_secret" else shop.signing_secret
    body, headers = sign(signer, "msg_bad", notification(app, shop, order), when)
    if tamper == "changed_body":
        body = body.replace('"SUCCESS"', '"FAILED"')
    if tamper == "missing_signature":
        del headers["webhook-signature"]
    if tamper == "garbage_signature":
        headers["webhook-signature"] = "not-a-signature"

    response = post(shop, body, headers)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "WEBHOOK_SIGNATURE_INVALID"
    assert state(shop, order.id) == ("PENDING_PAYMENT", 2, None)
    assert shop.count(ReceivedNotification) == 0


def test_a_signed_body_that_is_not_a_notification_is_refused(shop, order):
    response = post(shop, *sign(shop.signing_secret, "msg_weird", {"hello": "world"}))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "WEBHOOK_PAYLOAD_INVALID"
    assert shop.count(ReceivedNotification) == 0


def test_the_same_webhook_id_twice_is_applied_once(app, shop, order):
    payload = notification(app, shop, order, "FAILED", version=4)
    first = post(shop, *sign(shop.signing_secret, "msg_dup", payload))
    # The repeat carries news that would change the order if it were applied again.
    repeat = notification(app, shop, order, "SUCCESS", version=5)
    again = post(shop, *sign(shop.signing_secret, "msg_dup", repeat))

    assert first.json()["outcome"] == "applied"
    assert again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    assert state(shop, order.id)[:2] == ("FAILED", 4)
    assert shop.received() == [("payment.failed", "applied")]


def test_a_stale_status_version_is_ignored(app, shop, order):
    newer = notification(app, shop, order, "FAILED", version=4)
    older = notification(app, shop, order, "SUCCESS", version=3)

    assert post(shop, *sign(shop.signing_secret, "msg_new", newer)).json()["outcome"] == "applied"
    late = post(shop, *sign(shop.signing_secret, "msg_old", older))

    assert late.status_code == 200
    assert late.json()["outcome"] == "stale"
    assert state(shop, order.id)[:2] == ("FAILED", 4)


def test_a_notification_for_an_order_the_shop_does_not_have_is_acknowledged_and_recorded(
    app, shop, order
):
    payload = notification(app, shop, order, merchant_reference=f"order-{order.id + 1000}")

    response = post(shop, *sign(shop.signing_secret, "msg_unknown", payload))

    assert response.status_code == 200
    assert response.json()["outcome"] == "unknown_order"
    assert state(shop, order.id)[0] == "PENDING_PAYMENT"


def test_a_notification_naming_another_payment_does_not_touch_the_order(app, shop, order):
    payload = notification(app, shop, order, id="pay_someoneelse000000000001")

    response = post(shop, *sign(shop.signing_secret, "msg_other", payload))

    assert response.json()["outcome"] == "ignored"
    assert state(shop, order.id)[0] == "PENDING_PAYMENT"


def test_before_the_order_knows_its_payment_only_one_for_its_amount_is_taken(app, shop, order):
    """An order whose create answer was lost (PayBridge made the payment, the shop never heard):
    the notification names it by the order's reference, and the amount must match too."""
    from demo_shop.extensions import db as shop_db
    from demo_shop.models import Order

    with shop.app.app_context():
        shop_db.session.get(Order, order.id).payment_id = None
        shop_db.session.commit()
    wrong = notification(app, shop, order, amount=order.total_amount + 100)
    right = notification(app, shop, order)

    assert post(shop, *sign(shop.signing_secret, "msg_w", wrong)).json()["outcome"] == "ignored"
    assert post(shop, *sign(shop.signing_secret, "msg_r", right)).json()["outcome"] == "applied"

    paid = shop.order(order.id)
    assert (paid.status, paid.payment_id) == ("PAID", right["data"]["id"])


def test_notify_needs_no_csrf_token_but_a_signature(shop):
    response = requests.post(shop.notify_url, json={"type": "payment.succeeded", "data": {}})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "WEBHOOK_SIGNATURE_INVALID"


def test_a_refund_that_fails_after_it_succeeded_shows_as_failed_and_gives_the_amount_back(
    app, shop, shopper, order
):
    """The PSP reverses a refund: refund.failed follows refund.succeeded for the same refund."""
    paid = notification(app, shop, order)
    post(shop, *sign(shop.signing_secret, "msg_paid", paid))
    refund = {
        "id": "re_test0000000000000000001",
        "object": "refund",
        "payment_id": order.payment_id,
        "amount": 1000,
        "currency": "EUR",
        "status": "succeeded",
        "failure_reason": None,
        "payment": {**paid["data"], "refunded_amount": 1000},
    }
    event = {"id": "msg_r1", "type": "refund.succeeded", "data": refund}
    assert post(shop, *sign(shop.signing_secret, "msg_r1", event)).json()["outcome"] == "applied"
    assert "Partially refunded" in shopper.page(f"/orders/{order.id}")

    reversed_ = {**refund, "status": "failed", "failure_reason": "expired_or_canceled_card"}
    event = {"id": "msg_r2", "type": "refund.failed", "data": reversed_}
    assert post(shop, *sign(shop.signing_secret, "msg_r2", event)).json()["outcome"] == "applied"

    assert shop.order(order.id).refunded_amount == 0
    page = shopper.page(f"/orders/{order.id}")
    assert "Partially refunded" not in page
    assert "expired_or_canceled_card" in page


def test_a_dispute_shows_on_the_order_as_its_latest_notification_says(app, shop, shopper, order):
    paid = notification(app, shop, order)
    post(shop, *sign(shop.signing_secret, "msg_paid", paid))
    dispute = {
        "id": "dsp_test000000000000000001",
        "object": "dispute",
        "payment_id": order.payment_id,
        "amount": 2500,
        "currency": "EUR",
        "reason": "product_not_received",
        "status": "needs_response",
        "payment": paid["data"],
    }
    opened = {"id": "msg_d1", "type": "dispute.created", "data": dispute}
    assert post(shop, *sign(shop.signing_secret, "msg_d1", opened)).json()["outcome"] == "applied"
    page = shopper.page(f"/orders/{order.id}")
    assert "Disputed: needs a response" in page and "dsp_test000000000000000001" in page
    assert "product not received" in page

    closed = {"id": "msg_d2", "type": "dispute.closed", "data": {**dispute, "status": "lost"}}
    assert post(shop, *sign(shop.signing_secret, "msg_d2", closed)).json()["outcome"] == "applied"

    page = shopper.page(f"/orders/{order.id}")
    assert "Dispute lost" in page and "Disputed: needs a response" not in page
    assert "Dispute lost" in shopper.page("/orders")
    unknown = {**dispute, "id": "dsp_other", "payment_id": "pay_not_this_shops"}
    event = {"id": "msg_d3", "type": "dispute.created", "data": unknown}
    assert post(shop, *sign(shop.signing_secret, "msg_d3", event)).json()["outcome"] == (
        "unknown_order"
    )


# --- delivered by PayBridge itself ----------------------------------------------------------


def pay(app, shop, emulator, order) -> None:
    """The shopper pays on the hosted page (the emulator's control route), never comes back;
    PayBridge's notification settles the order."""
    session_id = paybridge_api(app, shop, "GET", f"/payments/{order.payment_id}")["psp_session_id"]
    emulator.control("POST", f"checkout/sessions/{session_id}/pay", {"card": SUCCESS_CARD})
    assert deliver_until_order_final(app, shop, order.id) == "PAID"


@pytest.mark.slow
def test_refunds_made_at_paybridge_reach_the_shoppers_order(app, shop, shopper, order, emulator):
    pay(app, shop, emulator, order)
    path = f"/payments/{order.payment_id}/refunds"

    paybridge_api(app, shop, "POST", path, json={"amount": 900}, idempotency_key="refund-1")
    wait_until(
        lambda: deliver_due_notifications(app) or shop.count(Refund),
        what="the refund",
        timeout=20.0,
    )

    page = shopper.page(f"/orders/{order.id}")
    assert 'data-testid="refund-status"' in page and "Partially refunded" in page
    assert "€9.00 of €29.00" in page
    assert "Partially refunded" in shopper.page("/orders")

    paybridge_api(app, shop, "POST", path, idempotency_key="refund-2")  # the rest
    wait_until(
        lambda: deliver_due_notifications(app) or shop.count(Refund) == 2,
        what="refund 2",
        timeout=20.0,
    )

    page = shopper.page(f"/orders/{order.id}")
    assert ">Refunded</span>" in page and "€29.00 of €29.00" in page
    assert page.count('data-testid="refund-row"') == 2
    assert shop.received() == [
        ("payment.succeeded", "applied"),
        ("refund.succeeded", "applied"),
        ("refund.succeeded", "applied"),
    ]


@pytest.mark.slow
def test_a_subscriptions_renewals_reach_the_shoppers_order(app, shop, shopper, emulator):
    shopper.subscribe()
    [order] = shop.orders()
    pay(app, shop, emulator, order)
    assert shop.order(order.id).subscription_id.startswith("subs_")
    psp_subscription = paybridge_api(app, shop, "GET", f"/payments/{order.payment_id}")[
        "psp_subscription_id"
    ]

    emulator.control("POST", f"subscriptions/{psp_subscription}/renew")  # bill a month now
    wait_until(
        lambda: deliver_due_notifications(app) or shop.order(order.id).renewals,
        what="the renewal's notification",
        timeout=20.0,
    )
    emulator.control("POST", f"subscriptions/{psp_subscription}/fail_next_renewal", {})
    emulator.control("POST", f"subscriptions/{psp_subscription}/renew")
    wait_until(
        lambda: deliver_due_notifications(app) or len(shop.order(order.id).renewals) == 2,
        what="the failed renewal's notification",
        timeout=20.0,
    )

    renewals = shop.order(order.id).renewals
    assert [(r.amount, r.status) for r in renewals] == [(1900, "SUCCESS"), (1900, "FAILED")]
    page = shopper.page(f"/orders/{order.id}")
    rows = page.split('<table class="charges">')[1].split("</table>")[0]
    assert rows.count("<tr><td>") == 3 and rows.count("<td>Renewal</td>") == 2
    assert rows.count("paid") == 2 and rows.count("failed") == 1
    assert 'data-testid="subscription-status">past due' in page
    assert shop.received() == [
        ("payment.succeeded", "applied"),
        ("payment.succeeded", "applied"),
        ("payment.failed", "applied"),
    ]


@pytest.mark.slow
def test_while_paybridge_rotates_the_secret_the_shops_old_one_still_verifies(
    app, shop, emulator, order
):
    with app.app_context():
        for endpoint in endpoints_of(shop.merchant_id):
            endpoint.rotate_signing_secret(timedelta(hours=24))
        db.session.commit()

    pay(app, shop, emulator, order)  # signed with both secrets; the shop holds the old one

    assert shop.received() == [("payment.succeeded", "applied")]
