"""A shopper in Chromium: sign up, fill the cart, pay on the hosted page, see the real outcome."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.shop.support import (
    DECLINED_CARD,
    ensure_stripe_webhook_endpoint,
    run_notification_worker,
    seed_shop,
    wait_for,
)


@pytest.fixture
def shop_url(app, live_server, emulator) -> str:
    """The seeded shop on the live server; the emulator's webhooks and notifications reach it."""
    ensure_stripe_webhook_endpoint(emulator, live_server)
    seed_shop(app, live_server.url)
    return live_server.url


def sign_up(page: Page, shop_url: str, email: str) -> None:
    page.goto(shop_url + "/")
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Your name").fill("Ada Lovelace")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill("analytical-engine")
    page.get_by_label("Repeat the password").fill("analytical-engine")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("Welcome, Ada Lovelace!")).to_be_visible()


def add_to_cart(page: Page, shop_url: str, name: str) -> None:
    page.goto(shop_url + "/")
    page.get_by_role("button", name=f"Add {name} to cart").click()
    expect(page.get_by_text("Added to your cart.")).to_be_visible()


def check_out(page: Page, emulator) -> None:
    """From the cart to the emulator's hosted checkout page."""
    page.get_by_role("link", name="Cart").click()
    page.get_by_role("link", name="Go to checkout").click()
    page.get_by_role("button", name="Place order and pay").click()
    expect(page).to_have_url(re.compile(re.escape(emulator.url) + r"/c/pay/cs_"))


def pay_with_card(page: Page, number: str) -> None:
    page.locator("#card_number").fill(number)
    page.locator("#exp").fill("12 / 34")
    page.locator("#cvc").fill("123")
    page.locator("#cardholder").fill("Ada Lovelace")
    page.locator("#pay").click()


def deliver_while_waiting_for(page: Page, app, text: str, timeout: float = 30) -> None:
    """Run PayBridge's notification delivery (RQ bursts) until the self-refreshing page says so."""

    def shows_text():
        run_notification_worker(app)
        return page.get_by_text(text).count() > 0

    wait_for(shows_text, timeout=timeout, interval=0.5, what=f"page to show {text!r}")


def test_a_shopper_signs_up_buys_two_prints_and_sees_the_order_paid(page, app, shop_url, emulator):
    sign_up(page, shop_url, "ada@example.com")
    add_to_cart(page, shop_url, "Alpine Sunrise")
    add_to_cart(page, shop_url, "Ocean Swell")
    page.get_by_role("link", name="Cart").click()
    expect(page.get_by_test_id("cart-line")).to_have_count(2)
    expect(page.get_by_test_id("cart-total")).to_have_text("€53.00")

    check_out(page, emulator)
    expect(page.get_by_text("€53.00").first).to_be_visible()
    pay_with_card(page, "4242 4242 4242 4242")

    # Back in the shop: the return alone proves nothing, the page waits for the real status.
    expect(page).to_have_url(re.compile(re.escape(shop_url) + r"/orders/\d+/success"))
    deliver_while_waiting_for(page, app, "Thank you! Your order is paid.")
    expect(page.get_by_test_id("payment-status")).to_have_attribute("data-status", "SUCCESS")

    page.get_by_role("link", name="My orders", exact=True).click()
    row = page.get_by_test_id("order-row")
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("order-status")).to_have_attribute("data-status", "PAID")
    expect(row.get_by_test_id("order-status")).to_have_text("Paid")
    expect(row).to_contain_text("€53.00")


def test_a_declined_card_is_shown_on_the_hosted_page_and_the_order_stays_unpaid(
    page, app, shop_url, emulator
):
    sign_up(page, shop_url, "bob@example.com")
    add_to_cart(page, shop_url, "City Lights")
    check_out(page, emulator)
    hosted_url = page.url

    pay_with_card(page, "4000 0000 0000 0002")

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(re.compile("declined", re.IGNORECASE))
    expect(page).to_have_url(hosted_url)

    # The shopper gives up and goes back to the shop: nothing is paid, checkout can resume.
    page.locator("#back").click()
    expect(page).to_have_url(re.compile(re.escape(shop_url) + r"/orders/\d+/cancelled"))
    expect(page.get_by_role("heading", name="You left the checkout")).to_be_visible()
    expect(page.get_by_test_id("order-status")).to_have_attribute("data-status", "PENDING_PAYMENT")
    expect(page.get_by_test_id("payment-status")).to_have_attribute("data-status", "INITIATED")
    assert DECLINED_CARD  # the same card the emulator documents as generic_decline


def test_a_cancelled_checkout_shows_the_order_open_and_can_return_to_the_same_checkout(
    page, app, shop_url, emulator
):
    sign_up(page, shop_url, "cy@example.com")
    add_to_cart(page, shop_url, "Desert Dunes")
    check_out(page, emulator)
    hosted_url = page.url

    page.locator("#back").click()

    expect(page.get_by_role("heading", name="You left the checkout")).to_be_visible()
    expect(page.get_by_text("Nothing was charged.")).to_be_visible()
    expect(page.get_by_test_id("payment-status")).to_have_attribute("data-status", "INITIATED")
    page.get_by_test_id("return-to-checkout").click()
    expect(page).to_have_url(hosted_url)

    # Back once more, and this time cancel the order for good.
    page.locator("#back").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel order").click()
    expect(page.get_by_text("The payment was stopped.")).to_be_visible()
    run_notification_worker(app)
    page.get_by_role("link", name="My orders", exact=True).click()
    status = page.get_by_test_id("order-row").get_by_test_id("order-status")
    expect(status).to_have_attribute("data-status", "FAILED")
