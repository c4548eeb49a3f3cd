"""The hosted checkout page driven like a customer in Chromium (Playwright)."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.waiting import wait_until

from .conftest import session_params

pytestmark = pytest.mark.e2e


class Shop:
    """The merchant's success/cancel pages: any GET answers a page naming its path."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = f"<!doctype html><title>Shop</title><h1>{self.path}</h1>".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def shop():
    s = Shop()
    yield s
    s.server.shutdown()
    s.server.server_close()


@pytest.fixture
def checkout(client, shop):
    def create(**overrides):
        return client.v1.checkout.sessions.create(
            params=session_params(
                success_url=f"{shop.url}/success?session_id={{CHECKOUT_SESSION_ID}}",
                cancel_url=f"{shop.url}/cancel",
                **overrides,
            )
        )

    return create


def event_types(client, sid: str) -> list[str]:
    return [e.type for e in client.v1.events.list({"limit": 100}).data if e.data.object.id == sid]


def pay_by_card(page, number: str) -> None:
    """Fill the hosted page's form as a customer does (email, card number) and press Pay."""
    page.get_by_label("Email").fill("buyer@example.com")
    page.get_by_label("Card number").fill(number)
    page.get_by_role("button", name=re.compile("^Pay")).click()


def test_card_payment_completes_and_redirects_to_success_url(page, client, emu, checkout, shop):
    s = checkout(customer_email="buyer@example.com")
    page.goto(s.url)
    assert page.get_by_role("cell", name="Widget").is_visible()
    assert page.locator("#total").inner_text() == "$39.98"
    assert page.get_by_label("Email").input_value() == "buyer@example.com"
    page.get_by_label("Card", exact=True).check()
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_label("Expiry (MM / YY)").fill("12 / 34")
    page.get_by_label("CVC").fill("123")
    page.get_by_role("button", name="Pay $39.98").click()
    page.wait_for_url(f"{shop.url}/success?session_id={s.id}")
    s = client.v1.checkout.sessions.retrieve(s.id)
    assert (s.status, s.payment_status) == ("complete", "paid")
    assert sorted(event_types(client, s.id)) == ["checkout.session.completed"]
    page.goto(f"{emu.url}/c/pay/{s.id}")
    assert page.get_by_role("heading", name="Checkout session complete").is_visible()
    assert page.get_by_role("button", name=re.compile("Pay")).count() == 0


def test_declined_card_shows_error_and_leaves_session_open(page, client, checkout):
    s = checkout()
    page.goto(s.url)
    pay_by_card(page, "4000000000000002")
    assert page.get_by_role("alert").inner_text() == "Your card was declined."
    assert client.v1.checkout.sessions.retrieve(s.id).status == "open"
    assert event_types(client, s.id) == []
    # The customer can try again with a good card, using only the keyboard.
    page.get_by_label("Card number").fill("5555555555554444")
    page.get_by_label("Card number").press("Enter")
    page.wait_for_url(re.compile(r"/success\?session_id=" + s.id))


def test_back_link_goes_to_cancel_url_and_session_stays_open(page, client, checkout, shop):
    s = checkout()
    page.goto(s.url)
    page.get_by_role("link", name=re.compile("Back")).click()
    page.wait_for_url(f"{shop.url}/cancel")
    assert client.v1.checkout.sessions.retrieve(s.id).status == "open"


def test_three_d_secure_deny_then_approve(page, client, checkout):
    s = checkout()
    page.goto(s.url)
    pay_by_card(page, "4000002500003155")
    page.get_by_role("button", name="Fail authentication").click()
    assert "unable to authenticate" in page.get_by_role("alert").inner_text()
    assert client.v1.checkout.sessions.retrieve(s.id).status == "open"
    page.get_by_label("Card number").fill("4000002500003155")
    page.get_by_role("button", name=re.compile("^Pay")).click()
    page.get_by_role("button", name="Complete authentication").click()
    page.wait_for_url(re.compile(r"/success\?session_id=" + s.id))
    assert client.v1.checkout.sessions.retrieve(s.id).payment_status == "paid"


@pytest.mark.parametrize(
    ("iban", "choice", "outcome", "event"),
    [
        ("DE89370400440532013000", "Decided by the test IBAN", "paid",
         "checkout.session.async_payment_succeeded"),
        ("DE62370400440532013001", "Decided by the test IBAN", "unpaid",
         "checkout.session.async_payment_failed"),
        ("DE89370400440532013000", "Fails", "unpaid", "checkout.session.async_payment_failed"),
    ],
)  # fmt: skip
def test_delayed_method_completes_unpaid_then_settles(
    page, client, emu, checkout, iban, choice, outcome, event
):
    s = checkout()
    page.goto(s.url)
    page.get_by_label("Email").fill("buyer@example.com")
    page.get_by_label("SEPA Direct Debit (settles later)").check()
    assert page.get_by_label("Card number").is_hidden()
    page.get_by_label("IBAN").fill(iban)
    page.get_by_label("Simulated outcome").select_option(label=choice)
    page.get_by_role("button", name=re.compile("^Pay")).click()
    page.wait_for_url(re.compile(r"/success\?session_id=" + s.id))
    s = client.v1.checkout.sessions.retrieve(s.id)
    assert (s.status, s.payment_status) == ("complete", "unpaid")
    assert event_types(client, s.id) == ["checkout.session.completed"]
    emu.control("POST", "clock/advance", {"seconds": 5})
    s = client.v1.checkout.sessions.retrieve(s.id)
    assert s.payment_status == outcome
    wait_until(lambda: event in event_types(client, s.id), what=event, interval=0.02)


def test_expired_session_page_refuses_payment(page, client, checkout):
    s = checkout()
    page.goto(s.url)
    client.v1.checkout.sessions.expire(s.id)
    pay_by_card(page, "4242424242424242")
    assert page.get_by_role("heading", name="Checkout session expired").is_visible()
    assert client.v1.checkout.sessions.retrieve(s.id).status == "expired"
    page.goto(s.url)
    assert "has expired" in page.get_by_role("status").inner_text()


def test_subscription_bought_on_the_page_is_active_with_a_paid_first_invoice(
    page, client, checkout, shop
):
    s = checkout(
        mode="subscription",
        line_items=[
            {
                "price_data": {
                    "currency": "usd",
                    "unit_amount": 1200,
                    "product_data": {"name": "Coffee club"},
                    "recurring": {"interval": "month"},
                },
                "quantity": 1,
            }
        ],
    )
    page.goto(s.url)
    page.get_by_label("Email").fill("member@example.com")
    page.get_by_label("Card", exact=True).check()
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_label("Expiry (MM / YY)").fill("12 / 34")
    page.get_by_label("CVC").fill("123")
    page.get_by_role("button", name=re.compile("^Subscribe")).click()
    page.wait_for_url(f"{shop.url}/success?session_id={s.id}")
    s = client.v1.checkout.sessions.retrieve(s.id, {"expand": ["subscription", "invoice"]})
    assert (s.status, s.payment_status) == ("complete", "paid")
    assert s.subscription.status == "active"
    assert (s.invoice.status, s.invoice.amount_paid) == ("paid", 1200)
    assert s.invoice.customer_email == "member@example.com"
