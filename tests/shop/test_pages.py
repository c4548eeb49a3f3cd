"""Shop pages: accounts, the cart, CSRF on every form, and `flask seed-demo`."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import ApiKey, Merchant, User
from app.shop.models import Product, ShopCustomer, ShopSetting
from tests.shop.support import Shopper, count


def test_the_home_page_is_the_catalogue_with_images_and_prices(client, shop):
    page = client.get("/").get_data(as_text=True)

    assert page.count('class="product-card"') == 8
    assert "€29.00" in page and "Alpine Sunrise" in page
    for slug in ("alpine-sunrise", "harbour-lighthouse"):
        image = client.get(f"/static/shop/products/{slug}.svg")
        assert image.status_code == 200
        assert image.mimetype == "image/svg+xml"


def test_a_product_page_shows_the_print_and_an_unknown_one_is_404(client, shop):
    assert "Northern Lights" in client.get("/products/northern-lights").get_data(as_text=True)
    missing = client.get("/products/no-such-print")
    assert missing.status_code == 404


def test_signup_hashes_the_password_and_logs_the_shopper_in(app, client, shop):
    response = Shopper(client).signup("Ada@Example.com ", password="s3cret-pass")

    assert response.status_code == 303
    with app.app_context():
        customer = db.session.execute(select(ShopCustomer)).scalar_one()
        assert customer.email == "ada@example.com"
        assert "s3cret-pass" not in customer.password_hash
        assert customer.check_password("s3cret-pass")
    page = client.get("/").get_data(as_text=True)
    assert "Log out" in page and "My orders" in page


def test_signup_refuses_a_taken_email_and_bad_input_with_messages(client, shop):
    shopper = Shopper(client)
    shopper.signup("ada@example.com")
    shopper.post_action("/account/logout")

    taken = shopper.signup("ADA@example.com")
    short = shopper.signup("bob@example.com", password="short")
    bad_email = shopper.signup("not-an-email")

    assert taken.status_code == short.status_code == bad_email.status_code == 422
    assert "already an account" in taken.get_data(as_text=True)
    assert "at least 8 characters" in short.get_data(as_text=True)
    assert "valid email address" in bad_email.get_data(as_text=True)


def test_login_and_logout(client, shop):
    shopper = Shopper(client)
    shopper.signup("ada@example.com", password="right-password")
    shopper.post_action("/account/logout")
    assert client.get("/orders").status_code == 302

    wrong = shopper.login("ada@example.com", "wrong-password")
    assert wrong.status_code == 422
    assert "do not match" in wrong.get_data(as_text=True)

    right = shopper.login("ada@example.com", "right-password", next_url="/orders")
    assert right.status_code == 303
    assert right.headers["Location"] == "/orders"
    assert client.get("/orders").status_code == 200


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil"])
def test_login_never_redirects_off_site(client, shop, target):
    shopper = Shopper(client)
    shopper.signup("ada@example.com", password="right-password")
    shopper.post_action("/account/logout")

    response = shopper.login("ada@example.com", "right-password", next_url=target)

    assert response.headers["Location"] == "/"


def test_the_shop_session_is_not_a_dashboard_login(client, shop):
    Shopper(client).signup("ada@example.com")
    with client.session_transaction() as session:
        assert "shop_customer_id" in session
        assert "_user_id" not in session  # Flask-Login's key belongs to the dashboard


def test_cart_add_update_remove_and_totals(client, shop, products):
    shopper = Shopper(client)
    (a, price_a, _), (b, price_b, _) = products[0], products[1]
    shopper.add(a, 2)
    shopper.add(b)
    shopper.add(a)  # adds up

    page = client.get("/cart").get_data(as_text=True)
    assert page.count('data-testid="cart-line"') == 2
    total = 3 * price_a + price_b
    assert f"€{total / 100:,.2f}" in page

    token = shopper.token("/cart")
    client.post("/cart/update", data={"csrf_token": token, "product_id": a, "quantity": 1})
    client.post("/cart/remove", data={"csrf_token": token, "product_id": b})

    page = client.get("/cart").get_data(as_text=True)
    assert page.count('data-testid="cart-line"') == 1
    assert f"€{price_a / 100:,.2f}" in page.split('data-testid="cart-total"')[1][:40]


def test_cart_refuses_unknown_products_and_silly_quantities(client, shop, products):
    token = Shopper(client).token()

    def add(product_id, quantity):
        response = client.post(
            "/cart/add", data={"csrf_token": token, "product_id": product_id, "quantity": quantity}
        )
        assert response.status_code == 303
        return client.get("/cart").get_data(as_text=True)

    assert "not available any more" in add(999999, 1)
    assert "Number must be between 1 and 20" in add(products[0][0], 21)
    assert "Number must be between 1 and 20" in add(products[0][0], -1)
    assert "Your cart is empty" in client.get("/cart").get_data(as_text=True)


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/account/signup", {"name": "x", "email": "x@example.com", "password": "p" * 10}),
        ("/account/login", {"email": "x@example.com", "password": "p" * 10}),
        ("/account/logout", {}),
        ("/cart/add", {"product_id": "1", "quantity": "1"}),
        ("/cart/update", {"product_id": "1", "quantity": "1"}),
        ("/cart/remove", {"product_id": "1"}),
        ("/checkout", {"token": "t"}),
        ("/orders/1/pay", {}),
        ("/orders/1/cancel", {}),
        ("/orders/1/reorder", {}),
    ],
)
def test_every_form_without_a_csrf_token_is_refused(client, shop, path, data):
    response = client.post(path, data=data)

    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)


def test_a_forged_csrf_token_is_refused(client, shop):
    response = client.post(
        "/account/login",
        data={"csrf_token": "forged", "email": "x@example.com", "password": "whatever"},
    )

    assert response.status_code == 400


def test_seed_demo_creates_everything_once_and_prints_the_api_key_only_then(app, runner):
    first = runner.invoke(args=["seed-demo", "--public-base-url", "http://shop.test"])
    second = runner.invoke(args=["seed-demo", "--public-base-url", "http://shop.test"])

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert "API key of the demo merchant" in first.output
    assert "pbk_" in first.output
    assert "pbk_" not in second.output and "already exists" in second.output
    assert "merchant@example.com / demo-password" in first.output
    with app.app_context():
        merchant = db.session.execute(select(Merchant)).scalar_one()
        assert merchant.name == "PayBridge Demo Shop"
        assert merchant.notify_url == "http://shop.test/shop/notify"
        assert db.session.get(ShopSetting, "merchant_id").value == str(merchant.id)
        assert count(app, ApiKey) == 1
        assert count(app, Product) == 8
        users = {u.email: u for u in db.session.execute(select(User)).scalars()}
        assert users["merchant@example.com"].role == "merchant"
        assert users["merchant@example.com"].merchant_id == merchant.id
        assert users["merchant@example.com"].check_password("demo-password")
        assert users["operator@example.com"].role == "operator"
        assert users["operator@example.com"].check_password("operator-password")


def test_seed_demo_moves_the_notify_url_when_the_shop_moves(app, runner):
    runner.invoke(args=["seed-demo", "--public-base-url", "http://old.test"])

    result = runner.invoke(args=["seed-demo", "--public-base-url", "http://new.test/"])

    assert "-> http://new.test/shop/notify" in result.output
    with app.app_context():
        assert db.session.execute(select(Merchant.notify_url)).scalar_one() == (
            "http://new.test/shop/notify"
        )


def test_checkout_before_seeding_says_so(client, app):
    """Without `flask seed-demo` there is no catalogue and no merchant: a clear page, no crash."""
    page = client.get("/").get_data(as_text=True)
    assert "flask seed-demo" in page


def test_login_attempts_are_rate_limited(client, shop):
    token = Shopper(client).token("/account/login")
    statuses = [
        client.post(
            "/account/login",
            data={"csrf_token": token, "email": "nobody@example.com", "password": "guess"},
        ).status_code
        for _ in range(21)
    ]

    assert statuses[:20] == [422] * 20
    assert statuses[20] == 429
