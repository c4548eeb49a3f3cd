"""Checkout through PayBridge's public API: one order and one payment per checkout, whatever the
shopper clicks, and clear words when PayBridge or the PSP cannot be reached."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.models import Payment, utcnow
from demo_shop.extensions import db as shop_db
from demo_shop.models import Order
from tests.shop.support import Shopper, csrf_token, deliver_until_order_final, form_value
from tests.support.api import auth_headers
from tests.support.delivery import deliver_due_notifications
from tests.support.payflow import SUCCESS_CARD


def payments(app) -> list[Payment]:
    """Every payment PayBridge has (of any merchant), detached."""
    with app.app_context():
        rows = db.session.scalars(select(Payment).order_by(Payment.id)).all()
        db.session.expunge_all()
        db.session.remove()
        return rows


def only_order_and_payment(app, shop) -> tuple[Order, Payment | None]:
    [order] = shop.orders()
    found = [p for p in payments(app) if p.merchant_reference == order.reference]
    assert len(found) <= 1
    return order, (found[0] if found else None)


def test_checkout_creates_the_order_and_its_payment_and_sends_the_shopper_to_the_hosted_page(
    app, shop, shopper, products, emulator
):
    (first, first_price, _), (second, second_price, _) = products[0], products[1]
    shopper.add(first, 2)
    shopper.add(second, 1)

    response = shopper.place_order(*shopper.checkout_form())

    assert response.status_code == 303
    order, payment = only_order_and_payment(app, shop)
    assert response.headers["Location"] == payment.checkout_url
    assert payment.checkout_url.startswith(emulator.url + "/c/pay/")
    assert order.status == "PENDING_PAYMENT"
    assert order.total_amount == 2 * first_price + second_price
    assert [(i.product_id, i.quantity) for i in order.items] == [(first, 2), (second, 1)]
    # The payment PayBridge holds is the one the shop asked for, as the shop's merchant.
    assert payment.merchant_id == shop.merchant_id
    assert payment.merchant_reference == f"order-{order.id}"
    assert (payment.amount, payment.currency, payment.status) == (order.total_amount, "EUR",
                                                                  "INITIATED")  # fmt: skip
    assert payment.customer_email == "ada@example.com"
    assert payment.success_url == f"{shop.url}/orders/{order.id}/success"
    assert payment.cancel_url == f"{shop.url}/orders/{order.id}/cancelled"
    # The shop remembers what PayBridge answered.
    assert (order.payment_id, order.payment_status) == (payment.public_id, "INITIATED")
    assert order.payment_status_version == payment.status_version
    assert "cart-line" not in shopper.page("/cart")  # emptied once the order exists


def test_submitting_the_same_checkout_again_reuses_the_order_and_its_payment(
    app, shop, shopper, products
):
    shopper.add(products[0][0])
    form = shopper.checkout_form()

    first = shopper.place_order(*form)
    again = shopper.place_order(*form)  # a double click, or a refresh that re-posts the form

    assert first.status_code == again.status_code == 303
    assert again.headers["Location"] == first.headers["Location"]
    only_order_and_payment(app, shop)
    assert len(payments(app)) == 1


def test_a_parallel_double_submit_makes_one_order_and_one_payment(app, shop, products):
    """Three clicks at once on the shop's real server: one order (the form's token), one
    payment (the order's Idempotency-Key, which PayBridge holds to while the first runs)."""
    browser = requests.Session()
    signup_page = browser.get(shop.url + "/account/signup").text
    browser.post(
        shop.url + "/account/signup",
        data={
            "csrf_token": csrf_token(signup_page),
            "name": "Grace",
            "email": "grace@example.com",
            "password": "long-enough-1",
            "confirm": "long-enough-1",
        },
    )
    login_page = browser.get(shop.url + "/account/login").text
    browser.post(
        shop.url + "/account/login",
        data={
            "csrf_token": csrf_token(login_page),
            "email": "grace@example.com",
            "password": "long-enough-1",
        },
    )
    home = browser.get(shop.url + "/").text
    browser.post(
        shop.url + "/cart/add",
        data={"csrf_token": csrf_token(home), "product_id": products[2][0], "quantity": 1},
    )
    checkout = browser.get(shop.url + "/checkout").text
    data = {"csrf_token": csrf_token(checkout), "token": form_value(checkout, "token")}
    cookies = browser.cookies.get_dict()
    locations: list[str] = []
    barrier = threading.Barrier(3)

    def submit():
        barrier.wait()
        r = requests.post(
            shop.url + "/checkout", data=data, cookies=cookies, allow_redirects=False, timeout=30
        )
        locations.append(f"{r.status_code} {r.headers.get('Location')}")

    threads = [threading.Thread(target=submit) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    order, payment = only_order_and_payment(app, shop)
    assert len(payments(app)) == 1
    assert locations == [f"303 {payment.checkout_url}"] * 3


def test_when_the_psp_is_down_the_order_is_kept_and_paying_again_reuses_it(
    app, shop, shopper, products, emulator
):
    shopper.add(products[0][0])
    emulator.control(
        "POST", "faults", {"kind": "http_500", "count": 1, "path": "/v1/checkout/sessions"}
    )
    try:
        response = shopper.place_order(*shopper.checkout_form())
    finally:
        emulator.control("DELETE", "faults")

    order, payment = only_order_and_payment(app, shop)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/orders/{order.id}"
    page = shopper.page(f"/orders/{order.id}")
    assert "could not reach the payment provider" in page
    assert "Try paying again" in page
    assert order.status == "PENDING_PAYMENT"
    assert payment.status == "CREATED"
    assert order.payment_id == payment.public_id  # PayBridge named the payment it kept

    retry = shopper.post_action(f"/orders/{order.id}/pay")

    order, paid = only_order_and_payment(app, shop)
    assert retry.status_code == 303
    assert paid.public_id == payment.public_id
    assert paid.status == "INITIATED"
    assert retry.headers["Location"] == paid.checkout_url
    assert len(payments(app)) == 1


def test_when_paybridge_is_down_the_shopper_is_told_and_the_order_waits(
    app, shop, products, tmp_path
):
    """PayBridge itself unreachable (the same shop, its settings pointing at a closed port):
    a clear message and the order kept; once PayBridge answers again, paying continues."""
    from demo_shop import create_app

    settings = {key: shop.app.config[key] for key in ("PUBLIC_URL", "SQLALCHEMY_DATABASE_URI")}
    offline = create_app(
        {**settings, "PAYBRIDGE_URL": "http://127.0.0.1:9"}, instance_path=str(tmp_path)
    )
    ada = Shopper(offline.test_client())
    ada.signup("ada@example.com", password="right-password")

    response = ada.buy(products[0][0])

    [order] = shop.orders()
    assert response.headers["Location"] == f"/orders/{order.id}"
    page = ada.page(f"/orders/{order.id}")
    assert "could not reach our payment service" in page
    assert "Try paying again" in page
    assert order.status == "PENDING_PAYMENT" and order.payment_id is None
    assert payments(app) == []

    back = Shopper(shop.app.test_client())  # PayBridge answers again
    back.login("ada@example.com", "right-password")
    retry = back.post_action(f"/orders/{order.id}/pay")

    [payment] = payments(app)
    assert retry.headers["Location"] == payment.checkout_url
    assert payment.merchant_reference == f"order-{order.id}"
    with offline.app_context():
        shop_db.engine.dispose()


def test_a_stale_checkout_form_after_the_cart_changed_is_refused(shop, shopper, products):
    shopper.add(products[0][0])
    form = shopper.checkout_form()
    shopper.add(products[1][0])  # the cart changes in another tab

    response = shopper.place_order(*form)

    assert response.status_code == 303
    assert response.headers["Location"] == "/cart"
    assert "Your cart changed" in shopper.page("/cart")
    assert shop.orders() == []


def test_checkout_needs_a_logged_in_shopper(visitor, products):
    visitor.add(products[0][0])

    response = visitor.client.get("/checkout")

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/account/login?next=/checkout")


def test_another_shopper_cannot_see_or_pay_my_order(app, shop, shopper, products):
    shopper.buy(products[0][0])
    [order] = shop.orders()
    other = Shopper(shop.app.test_client())
    assert other.signup("mallory@example.com").status_code == 303

    assert other.client.get(f"/orders/{order.id}").status_code == 404
    assert other.client.get(f"/orders/{order.id}/success").status_code == 404
    assert other.post_action(f"/orders/{order.id}/pay").status_code == 404
    assert other.post_action(f"/orders/{order.id}/cancel").status_code == 404
    assert 'data-testid="order-row"' not in other.page("/orders")


def test_the_success_page_shows_the_real_status_not_the_return(shop, shopper, products):
    shopper.buy(products[0][0])
    [order] = shop.orders()

    # The shopper (or anyone) opens the success URL without having paid.
    page = shopper.page(f"/orders/{order.id}/success")

    assert "Checking your payment" in page
    assert "Thank you" not in page
    assert 'http-equiv="refresh"' in page
    assert 'data-status="PENDING_PAYMENT"' in page
    assert 'data-status="INITIATED"' in page
    # The order page offers to continue to the same, still open, checkout.
    assert "Continue to payment" in shopper.page(f"/orders/{order.id}")


@pytest.mark.slow
def test_the_order_is_paid_when_paybridge_delivers_its_signed_notification(
    app, shop, shopper, products, emulator
):
    """The shopper pays and never comes back: the notification alone settles the order."""
    shopper.add(products[0][0])
    shopper.buy(products[1][0])
    order, payment = only_order_and_payment(app, shop)

    result = emulator.control(
        "POST", f"checkout/sessions/{payment.psp_session_id}/pay", {"card": SUCCESS_CARD}
    )
    assert result["declined"] is False

    assert deliver_until_order_final(app, shop, order.id) == "PAID"
    assert shop.received() == [("payment.succeeded", "applied")]
    page = shopper.page(f"/orders/{order.id}/success")
    assert "Thank you! Your order is paid." in page
    assert 'http-equiv="refresh"' not in page
    orders = shopper.page("/orders")
    assert 'data-status="PAID"' in orders and 'data-status="SUCCESS"' in orders


@pytest.mark.slow
def test_coming_back_to_the_success_page_asks_paybridge_and_the_notification_then_changes_nothing(
    app, shop, shopper, products, emulator
):
    shopper.buy(products[0][0])
    order, payment = only_order_and_payment(app, shop)
    emulator.control(
        "POST", f"checkout/sessions/{payment.psp_session_id}/pay", {"card": SUCCESS_CARD}
    )
    wait_for_status(app, payment.public_id, "SUCCESS")

    page = shopper.page(f"/orders/{order.id}/success?payment_id={payment.public_id}")

    assert "Thank you! Your order is paid." in page
    assert shop.order(order.id).status == "PAID"
    deliver_due_notifications(app)
    assert shop.received() == [("payment.succeeded", "stale")]  # nothing newer: already known


def wait_for_status(app, public_id: str, status: str) -> None:
    from tests.support.waiting import wait_until

    def reached():
        return [p for p in payments(app) if p.public_id == public_id and p.status == status]

    wait_until(reached, timeout=20, what=f"{public_id} {status}")


@pytest.mark.slow
def test_cancelling_an_unpaid_order_stops_its_payment_and_its_prints_can_go_back_in_the_cart(
    app, shop, shopper, products
):
    shopper.buy(products[0][0])
    [order] = shop.orders()

    response = shopper.post_action(f"/orders/{order.id}/cancel")

    assert response.status_code == 303
    _, payment = only_order_and_payment(app, shop)
    assert payment.status == "FAILED"
    assert shop.order(order.id).status == "FAILED"  # PayBridge's answer said so at once
    page = shopper.page(f"/orders/{order.id}")
    assert "The payment was stopped" in page
    assert "Put these prints back in my cart" in page
    deliver_due_notifications(app)
    assert shop.received() == [("payment.failed", "stale")]
    # A failed order's payment cannot be restarted; its prints can go back in the cart.
    again = shopper.post_action(f"/orders/{order.id}/pay")
    assert again.headers["Location"] == f"/orders/{order.id}"
    assert len(payments(app)) == 1
    shopper.post_action(f"/orders/{order.id}/reorder")
    assert "cart-line" in shopper.page("/cart")


def test_my_orders_lists_only_my_orders_newest_first(shop, shopper, products):
    for product in products[:2]:
        shopper.buy(product[0])

    page = shopper.page("/orders")

    first, second = shop.orders()
    rows = [f'data-order-id="{order.id}"' for order in (second, first)]
    assert page.index(rows[0]) < page.index(rows[1])
    assert page.count('data-testid="order-row"') == 2


def test_paying_again_after_the_checkout_expired_says_so_instead_of_sending_to_a_dead_page(
    app, shop, shopper, products
):
    shopper.buy(products[0][0])
    order, payment = only_order_and_payment(app, shop)
    with app.app_context():
        db.session.get(Payment, payment.id).psp_expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()

    response = shopper.post_action(f"/orders/{order.id}/pay")

    assert response.headers["Location"] == f"/orders/{order.id}"
    assert "has expired" in shopper.page(f"/orders/{order.id}")


def create_at_paybridge(app, shop, body: dict, key: str) -> dict:
    """A payment made with the shop's API key outside the shop (another tool of the merchant)."""
    response = requests.post(
        f"{app.config['PUBLIC_BASE_URL']}/api/v1/payments",
        json=body,
        headers=auth_headers(shop.api_key, key),
        timeout=15,
    )
    assert response.status_code == 201, response.text
    return response.json()


def payment_body(order_id: int, amount: int, shop) -> dict:
    return {
        "merchant_reference": f"order-{order_id}",
        "amount": amount,
        "currency": "EUR",
        "success_url": f"{shop.url}/orders/{order_id}/success",
        "cancel_url": f"{shop.url}/orders/{order_id}/cancelled",
        "metadata": {"order_id": str(order_id)},
    }


def test_an_order_whose_payment_already_exists_under_another_key_reuses_that_payment(
    app, shop, shopper, products
):
    """DUPLICATE_MERCHANT_REFERENCE names the payment the order already has: use that one."""
    product_id, price, _ = products[0]
    existing = create_at_paybridge(app, shop, payment_body(1, price, shop), "elsewhere-1")

    response = shopper.buy(product_id)  # the shop's first order: order-1

    assert response.headers["Location"] == existing["checkout_url"]
    assert shop.order(1).payment_id == existing["id"]
    assert len(payments(app)) == 1


def test_a_payment_under_the_orders_reference_for_another_amount_is_not_taken_for_it(
    app, shop, shopper, products
):
    product_id, price, _ = products[0]
    create_at_paybridge(app, shop, payment_body(1, price + 100, shop), "elsewhere-2")

    response = shopper.buy(product_id)

    assert response.headers["Location"] == "/orders/1"
    assert "could not be started" in shopper.page("/orders/1")
    assert shop.order(1).payment_id is None
