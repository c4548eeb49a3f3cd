"""Checkout: one order and one PayBridge payment per checkout, whatever the shopper clicks."""

from __future__ import annotations

import threading

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.models import Payment
from app.shop.models import Order, OrderStatus
from tests.shop.support import (
    SUCCESS_CARD,
    Shopper,
    count,
    csrf_token,
    deliver_until_order_final,
    form_value,
    order_status,
    wait_for,
)


def only_order(app) -> tuple[Order, Payment | None]:
    with app.app_context():
        orders = db.session.execute(select(Order)).scalars().all()
        assert len(orders) == 1, f"{len(orders)} orders"
        order = orders[0]
        order.items  # noqa: B018  (loaded before the session closes)
        payment = db.session.execute(
            select(Payment).where(Payment.merchant_reference == order.reference)
        ).scalar_one_or_none()
        db.session.expunge_all()
        db.session.remove()
        return order, payment


def test_checkout_creates_the_order_and_its_payment_and_sends_the_shopper_to_the_hosted_page(
    app, shopper, products, shop, emulator, live_server
):
    (first, first_price, _), (second, second_price, _) = products[0], products[1]
    assert shopper.add(first, 2).status_code == 303
    assert shopper.add(second, 1).status_code == 303

    response = shopper.place_order(*shopper.checkout_form())

    assert response.status_code == 303
    order, payment = only_order(app)
    assert response.headers["Location"] == payment.checkout_url
    assert payment.checkout_url.startswith(emulator.url + "/c/pay/")
    assert order.status == OrderStatus.PENDING_PAYMENT
    assert order.total_amount == 2 * first_price + second_price
    assert [(i.product_id, i.quantity) for i in order.items] == [(first, 2), (second, 1)]
    assert payment.merchant_id == shop.merchant_id
    assert payment.merchant_reference == f"order-{order.id}"
    assert (payment.amount, payment.currency) == (order.total_amount, "EUR")
    assert payment.status == "INITIATED"
    assert payment.customer_email == "ada@example.com"
    assert payment.success_url == f"{live_server.url}/orders/{order.id}/success"
    assert payment.cancel_url == f"{live_server.url}/orders/{order.id}/cancelled"
    assert order.payment_id == payment.public_id
    # The cart is emptied once the order exists.
    assert "cart-line" not in shopper.client.get("/cart").get_data(as_text=True)


def test_submitting_the_same_checkout_again_reuses_the_order_and_its_payment(
    app, shopper, products
):
    shopper.add(products[0][0])
    form = shopper.checkout_form()

    first = shopper.place_order(*form)
    again = shopper.place_order(*form)  # a double click, or a refresh that re-posts the form

    assert first.status_code == again.status_code == 303
    assert again.headers["Location"] == first.headers["Location"]
    only_order(app)
    assert count(app, Payment) == 1


def test_a_parallel_double_submit_makes_one_order_and_one_payment(app, shop, products, live_server):
    browser = requests.Session()
    signup_page = browser.get(live_server.url + "/account/signup").text
    browser.post(
        live_server.url + "/account/signup",
        data={
            "csrf_token": csrf_token(signup_page),
            "name": "Grace",
            "email": "grace@example.com",
            "password": "long-enough-1",
            "confirm": "long-enough-1",
        },
    )
    home = browser.get(live_server.url + "/").text
    browser.post(
        live_server.url + "/cart/add",
        data={"csrf_token": csrf_token(home), "product_id": products[2][0], "quantity": 1},
    )
    checkout = browser.get(live_server.url + "/checkout").text
    data = {"csrf_token": csrf_token(checkout), "token": form_value(checkout, "token")}
    cookies = browser.cookies.get_dict()
    locations: list[str] = []
    barrier = threading.Barrier(3)

    def submit():
        barrier.wait()
        r = requests.post(
            live_server.url + "/checkout",
            data=data,
            cookies=cookies,
            allow_redirects=False,
            timeout=30,
        )
        locations.append(f"{r.status_code} {r.headers.get('Location')}")

    threads = [threading.Thread(target=submit) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    order, payment = only_order(app)
    assert count(app, Payment) == 1
    assert locations == [f"303 {payment.checkout_url}"] * 3


def test_when_the_psp_is_down_the_order_is_kept_and_paying_again_reuses_it(
    app, shopper, products, emulator
):
    shopper.add(products[0][0])
    emulator.control(
        "POST", "faults", {"kind": "http_500", "count": 1, "path": "/v1/checkout/sessions"}
    )
    try:
        response = shopper.place_order(*shopper.checkout_form())
    finally:
        emulator.control("DELETE", "faults")

    order, payment = only_order(app)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/orders/{order.id}"
    page = shopper.client.get(f"/orders/{order.id}").get_data(as_text=True)
    assert "could not reach the payment provider" in page
    assert "Try paying again" in page
    assert order.status == OrderStatus.PENDING_PAYMENT
    assert payment.status == "CREATED"

    retry = shopper.post_action(f"/orders/{order.id}/pay")

    order, paid = only_order(app)
    assert retry.status_code == 303
    assert paid.public_id == payment.public_id
    assert paid.status == "INITIATED"
    assert retry.headers["Location"] == paid.checkout_url
    assert count(app, Payment) == 1


def test_a_stale_checkout_form_after_the_cart_changed_is_refused(app, shopper, products):
    shopper.add(products[0][0])
    form = shopper.checkout_form()
    shopper.add(products[1][0])  # the cart changes in another tab

    response = shopper.place_order(*form)

    assert response.status_code == 303
    assert response.headers["Location"] == "/cart"
    assert "Your cart changed" in shopper.client.get("/cart").get_data(as_text=True)
    assert count(app, Order) == 0


def test_checkout_needs_a_logged_in_shopper(client, shop, products):
    visitor = Shopper(client)
    visitor.add(products[0][0])

    response = client.get("/checkout")

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/account/login?next=/checkout")


def test_another_shopper_cannot_see_or_pay_my_order(app, shopper, products, client, shop):
    shopper.add(products[0][0])
    shopper.place_order(*shopper.checkout_form())
    order, _ = only_order(app)
    other = Shopper(app.test_client())
    assert other.signup("mallory@example.com").status_code == 303

    assert other.client.get(f"/orders/{order.id}").status_code == 404
    assert other.client.get(f"/orders/{order.id}/success").status_code == 404
    assert other.post_action(f"/orders/{order.id}/pay").status_code == 404
    assert f"#{order.id}" not in other.client.get("/orders").get_data(as_text=True)


def test_the_success_page_shows_the_real_status_not_the_return(app, shopper, products):
    shopper.add(products[0][0])
    shopper.place_order(*shopper.checkout_form())
    order, _ = only_order(app)

    # The shopper (or anyone) opens the success URL without having paid.
    page = shopper.client.get(f"/orders/{order.id}/success").get_data(as_text=True)

    assert "Checking your payment" in page
    assert "Thank you" not in page
    assert 'http-equiv="refresh"' in page
    assert 'data-status="PENDING_PAYMENT"' in page
    assert 'data-status="INITIATED"' in page
    # The order page offers to continue to the same, still open, checkout.
    order_page = shopper.client.get(f"/orders/{order.id}").get_data(as_text=True)
    assert "Continue to payment" in order_page


@pytest.mark.slow
def test_order_is_paid_after_paybridge_delivers_its_signed_notification(
    app, shopper, products, emulator
):
    shopper.add(products[0][0])
    shopper.add(products[1][0])
    shopper.place_order(*shopper.checkout_form())
    order, payment = only_order(app)

    result = emulator.control(
        "POST", f"checkout/sessions/{payment.psp_session_id}/pay", {"card": SUCCESS_CARD}
    )
    assert result["declined"] is False

    assert deliver_until_order_final(app, order.id) == OrderStatus.PAID
    page = shopper.client.get(f"/orders/{order.id}/success").get_data(as_text=True)
    assert "Thank you! Your order is paid." in page
    assert 'http-equiv="refresh"' not in page
    orders = shopper.client.get("/orders").get_data(as_text=True)
    assert 'data-status="PAID"' in orders
    assert 'data-status="SUCCESS"' in orders
    with app.app_context():
        from app.shop.models import ReceivedNotification

        received = db.session.execute(select(ReceivedNotification)).scalars().all()
        assert [(r.event_type, r.outcome) for r in received] == [("payment.succeeded", "applied")]


@pytest.mark.slow
def test_cancelling_an_unpaid_order_fails_its_payment_and_the_order_follows(app, shopper, products):
    shopper.add(products[0][0])
    shopper.place_order(*shopper.checkout_form())
    order, _ = only_order(app)

    response = shopper.post_action(f"/orders/{order.id}/cancel")

    assert response.status_code == 303
    _, payment = only_order(app)
    assert payment.status == "FAILED"
    assert deliver_until_order_final(app, order.id) == OrderStatus.FAILED
    page = shopper.client.get(f"/orders/{order.id}").get_data(as_text=True)
    assert "Put these prints back in my cart" in page
    # A failed order's payment cannot be restarted; its prints can go back in the cart.
    again = shopper.post_action(f"/orders/{order.id}/pay")
    assert again.headers["Location"] == f"/orders/{order.id}"
    assert count(app, Payment) == 1
    shopper.post_action(f"/orders/{order.id}/reorder")
    assert "cart-line" in shopper.client.get("/cart").get_data(as_text=True)
    assert order_status(app, order.id) == OrderStatus.FAILED


def test_my_orders_lists_only_my_orders_newest_first(app, shopper, products):
    for product in products[:2]:
        shopper.add(product[0])
        shopper.place_order(*shopper.checkout_form())
    wait_for(lambda: count(app, Order) == 2)

    page = shopper.client.get("/orders").get_data(as_text=True)

    with app.app_context():
        ids = [o.id for o in db.session.execute(select(Order).order_by(Order.id)).scalars()]
    assert page.index(f"#{ids[1]}") < page.index(f"#{ids[0]}")
    assert page.count('data-testid="order-row"') == 2


def test_paying_again_after_the_checkout_expired_says_so_instead_of_sending_to_a_dead_page(
    app, shopper, products
):
    from datetime import timedelta

    from app.models import utcnow

    shopper.add(products[0][0])
    shopper.place_order(*shopper.checkout_form())
    order, payment = only_order(app)
    with app.app_context():
        row = db.session.get(Payment, payment.id)
        row.psp_expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()

    response = shopper.post_action(f"/orders/{order.id}/pay")

    assert response.headers["Location"] == f"/orders/{order.id}"
    assert "has expired" in shopper.client.get(f"/orders/{order.id}").get_data(as_text=True)


def test_an_order_whose_payment_already_exists_under_another_key_reuses_that_payment(
    app, shopper, products, shop, live_server
):
    """DUPLICATE_MERCHANT_REFERENCE from PayBridge means "already registered": use that one."""
    from app.payments import service
    from app.shop import cart as carts
    from app.shop import services
    from app.shop.models import ShopCustomer

    shopper.add(products[0][0])
    _, token = shopper.checkout_form()
    with shopper.client.session_transaction() as state:
        cart_state = state["shop_cart"]
    with app.app_context():
        customer = db.session.execute(select(ShopCustomer)).scalar_one()
        order, _ = services.place_order(customer, carts.price(cart_state), token)
        db.session.commit()
        params = services.payment_params(order, live_server.url)
        existing = service.create_payment(shop.merchant_id, params, idempotency_key="elsewhere-1")
        existing_id = existing.public_id

        payment = services.start_payment(order)
        db.session.commit()

        assert payment.public_id == existing_id
        assert order.payment_id == existing_id
    assert count(app, Payment) == 1
