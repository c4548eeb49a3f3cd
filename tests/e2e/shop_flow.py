"""Shop steps in the browser, shared by the shop's and the dashboard's e2e tests."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.support.delivery import deliver_due_notifications
from tests.support.payflow import SUCCESS_CARD
from tests.support.waiting import wait_until


def sign_up(page: Page, shop_url: str, email: str) -> None:
    page.goto(shop_url + "/")
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Your name").fill("Ada Lovelace")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill("analytical-engine")
    page.get_by_label("Repeat the password").fill("analytical-engine")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("its account is ready: log in")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill("analytical-engine")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Welcome back, Ada Lovelace.")).to_be_visible()


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
    """Run PayBridge's notification delivery until the self-refreshing page says so."""

    def shows_text():
        deliver_due_notifications(app)
        return page.get_by_text(text).count() > 0

    wait_until(shows_text, timeout=timeout, interval=0.5, what=f"page to show {text!r}")


def buy(page: Page, app, shop_url: str, emulator, email: str, prints: list[str]) -> int:
    """A new shopper buys `prints` with the success card; returns the order id once PAID."""
    sign_up(page, shop_url, email)
    for name in prints:
        add_to_cart(page, shop_url, name)
    check_out(page, emulator)
    pay_with_card(page, SUCCESS_CARD)
    expect(page).to_have_url(re.compile(re.escape(shop_url) + r"/orders/\d+/success"))
    order_id = int(re.search(r"/orders/(\d+)/", page.url).group(1))
    deliver_while_waiting_for(page, app, "Thank you! Your order is paid.")
    return order_id
