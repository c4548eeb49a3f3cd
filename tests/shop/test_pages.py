"""The shop's pages: catalogue, accounts, the cart, CSRF on every form, and its `init` command."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from demo_shop import create_app
from demo_shop.extensions import db as shop_db
from demo_shop.models import Customer, Product
from tests.shop.support import Shopper


def test_the_home_page_is_the_catalogue_with_images_and_prices(visitor):
    page = visitor.page("/")

    assert page.count('class="product-card"') == 8
    assert "€29.00" in page and "Alpine Sunrise" in page
    assert "Print of the Month Club" in page and "€19.00 every month" in page
    for slug in ("alpine-sunrise", "harbour-lighthouse"):
        assert f'src="/static/products/{slug}.svg"' in page
        image = visitor.client.get(f"/static/products/{slug}.svg")
        assert image.status_code == 200
        assert image.mimetype == "image/svg+xml"


def test_a_product_page_shows_the_print_and_an_unknown_one_is_404(visitor):
    assert "Northern Lights" in visitor.page("/products/northern-lights")
    missing = visitor.client.get("/products/no-such-print")
    assert missing.status_code == 404
    assert "This print is not in the shop." in missing.get_data(as_text=True)


def test_signup_hashes_the_password_and_the_shopper_logs_in_with_it(shop, visitor):
    response = visitor.signup("Ada@Example.com ", password="s3cret-passage")

    assert response.status_code == 303
    with shop.app.app_context():
        customer = shop_db.session.scalars(select(Customer)).one()
        assert customer.email == "ada@example.com"
        assert "s3cret-passage" not in customer.password_hash
        assert customer.check_password("s3cret-passage")
    page = visitor.page("/")
    assert "Log out" in page and "My orders" in page


def test_signup_refuses_bad_input_with_messages(visitor):
    short = visitor.signup("bob@example.com", password="short")
    bad_email = visitor.signup("not-an-email")

    assert short.status_code == bad_email.status_code == 422
    assert "at least 8 characters" in short.get_data(as_text=True)
    assert "valid email address" in bad_email.get_data(as_text=True)


def test_login_and_logout(visitor):
    visitor.signup("ada@example.com", password="right-password")
    visitor.post_action("/account/logout")
    assert visitor.client.get("/orders").status_code == 302

    wrong = visitor.login("ada@example.com", "wrong-password")
    assert wrong.status_code == 422
    assert "do not match" in wrong.get_data(as_text=True)

    right = visitor.login("ada@example.com", "right-password", next_url="/orders")
    assert right.status_code == 303
    assert right.headers["Location"] == "/orders"
    assert visitor.client.get("/orders").status_code == 200


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil"])
def test_login_never_redirects_off_site(visitor, target):
    visitor.signup("ada@example.com", password="right-password")
    visitor.post_action("/account/logout")

    response = visitor.login("ada@example.com", "right-password", next_url=target)

    assert response.headers["Location"] == "/"


def test_the_session_cookie_holds_the_shopper_and_the_cart_only(visitor, products):
    visitor.signup("ada@example.com")
    visitor.add(products[0][0])
    with visitor.client.session_transaction() as session:
        assert set(session) - {"csrf_token", "_flashes"} == {"customer_id", "cart"}


def test_cart_add_update_remove_and_totals(visitor, products):
    (a, price_a, _), (b, price_b, _) = products[0], products[1]
    visitor.add(a, 2)
    visitor.add(b)
    visitor.add(a)  # adds up

    page = visitor.page("/cart")
    assert page.count('data-testid="cart-line"') == 2
    assert f"€{(3 * price_a + price_b) / 100:,.2f}" in page

    token = visitor.token("/cart")
    visitor.client.post("/cart/update", data={"csrf_token": token, "product_id": a, "quantity": 1})
    visitor.client.post("/cart/remove", data={"csrf_token": token, "product_id": b})

    page = visitor.page("/cart")
    assert page.count('data-testid="cart-line"') == 1
    assert f"€{price_a / 100:,.2f}" in page.split('data-testid="cart-total"')[1][:40]


def test_cart_refuses_unknown_products_and_silly_quantities(visitor, products):
    token = visitor.token()

    def add(product_id, quantity):
        response = visitor.client.post(
            "/cart/add", data={"csrf_token": token, "product_id": product_id, "quantity": quantity}
        )
        assert response.status_code == 303
        return visitor.page("/cart")

    assert "not available any more" in add(999999, 1)
    assert "Number must be between 1 and 20" in add(products[0][0], 21)
    assert "Number must be between 1 and 20" in add(products[0][0], -1)
    assert "Your cart is empty" in visitor.page("/cart")


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
        ("/subscribe/print-club", {"token": "t"}),
        ("/orders/1/pay", {}),
        ("/orders/1/cancel", {}),
        ("/orders/1/reorder", {}),
        ("/orders/1/subscription/cancel", {}),
    ],
)
def test_every_form_without_a_csrf_token_is_refused(visitor, path, data):
    response = visitor.client.post(path, data=data)

    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)


def test_a_forged_csrf_token_is_refused(visitor):
    response = visitor.client.post(
        "/account/login",
        data={"csrf_token": "forged", "email": "x@example.com", "password": "whatever"},
    )

    assert response.status_code == 400


def test_login_attempts_are_rate_limited_per_address(visitor):
    token = visitor.token("/account/login")
    statuses = [
        visitor.client.post(
            "/account/login",
            data={"csrf_token": token, "email": f"nobody{n}@example.com", "password": "guess"},
        ).status_code
        for n in range(21)
    ]

    assert statuses[:20] == [422] * 20
    assert statuses[20] == 429


@pytest.fixture
def no_shop_environment(monkeypatch):
    """Nothing from the shell running the tests: the shop's settings come from its instance."""
    from demo_shop.config import ENVIRONMENT

    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


def test_init_fills_the_catalogue_once_and_keeps_the_paybridge_credentials(
    tmp_path, no_shop_environment
):
    credentials = {
        "merchant_id": 7,
        "name": "PayBridge Demo Shop",
        "api_key": "pbk_test_abc",
        "signing_secret": "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",
    }
    # No PayBridge answers there: the store and credentials are kept, and init says that the
    # shop's notification endpoints (tests/shop/test_endpoints.py) are still to be created.
    nobody = "http://127.0.0.1:9"
    setup = create_app({"PAYBRIDGE_URL": nobody}, instance_path=str(tmp_path))

    first = setup.test_cli_runner().invoke(
        args=["init", "--paybridge-credentials", "-"], input=json.dumps(credentials)
    )
    again = setup.test_cli_runner().invoke(args=["init"])

    assert first.exit_code == 1 and again.exit_code == 1, first.output + again.output
    assert "could not create the shop's notification endpoints at PayBridge" in first.output
    assert f"({nobody}): UNREACHABLE" in again.output and "run init again" in again.output
    assert "8 prints added" in first.output and "0 prints added" in again.output
    assert "connected to PayBridge as merchant 7 with a test key" in first.output
    assert "pbk_test_abc" not in first.output  # a secret is stored, never printed
    stored = json.loads((tmp_path / "demo_shop.json").read_text())
    assert stored["PAYBRIDGE_API_KEY"] == "pbk_test_abc"
    assert stored["PAYBRIDGE_SIGNING_SECRET"] == credentials["signing_secret"]
    assert len(stored["SECRET_KEY"]) == 64
    assert (tmp_path / "demo_shop.json").stat().st_mode & 0o077 == 0
    # A new process reads them back, and knows which merchant it is.
    shop = create_app(instance_path=str(tmp_path))
    assert shop.config["PAYBRIDGE_API_KEY"] == "pbk_test_abc"
    assert shop.config["SECRET_KEY"] == stored["SECRET_KEY"]
    assert shop.test_cli_runner().invoke(args=["merchant-id"]).output.strip() == "7"
    with shop.app_context():
        assert shop_db.session.scalar(select(shop_db.func.count(Product.id))) == 8
        shop_db.engine.dispose()


def test_a_shop_that_was_never_set_up_says_what_to_run(tmp_path, no_shop_environment):
    fresh = create_app(instance_path=str(tmp_path))
    visitor = Shopper(fresh.test_client())

    assert "python -m demo_shop init" in visitor.page("/")
    visitor.signup("ada@example.com")
    response = visitor.subscribe()  # the plan needs no catalogue, but paying needs PayBridge
    assert response.headers["Location"] == "/orders/1"
    assert "not connected to PayBridge yet" in visitor.page("/orders/1")
    with fresh.app_context():
        shop_db.engine.dispose()
