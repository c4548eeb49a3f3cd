"""A shopper in Chromium: sign up, fill the cart, pay on the hosted page, see the real outcome."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.shop_flow import (
    add_to_cart,
    buy,
    check_out,
    deliver_while_waiting_for,
    pay_with_card,
    sign_up,
)
from tests.support.delivery import deliver_due_notifications
from tests.support.payflow import DECLINED_CARD, SUCCESS_CARD


def test_a_shopper_signs_up_buys_two_prints_and_sees_the_order_paid(page, app, shop_url, emulator):
    sign_up(page, shop_url, "ada@example.com")
    add_to_cart(page, shop_url, "Alpine Sunrise")
    add_to_cart(page, shop_url, "Ocean Swell")
    page.get_by_role("link", name="Cart").click()
    expect(page.get_by_test_id("cart-line")).to_have_count(2)
    expect(page.get_by_test_id("cart-total")).to_have_text("€53.00")

    check_out(page, emulator)
    expect(page.get_by_text("€53.00").first).to_be_visible()
    pay_with_card(page, SUCCESS_CARD)

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

    pay_with_card(page, DECLINED_CARD)

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(re.compile("declined", re.IGNORECASE))
    expect(page).to_have_url(hosted_url)

    # The shopper gives up and goes back to the shop: nothing is paid, checkout can resume.
    page.locator("#back").click()
    expect(page).to_have_url(re.compile(re.escape(shop_url) + r"/orders/\d+/cancelled"))
    expect(page.get_by_role("heading", name="You left the checkout")).to_be_visible()
    expect(page.get_by_test_id("order-status")).to_have_attribute("data-status", "PENDING_PAYMENT")
    expect(page.get_by_test_id("payment-status")).to_have_attribute("data-status", "INITIATED")


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
    expect(page.get_by_role("button", name="Continue to payment")).to_have_count(0)
    page.get_by_test_id("return-to-checkout").click()
    expect(page).to_have_url(hosted_url)

    # Back once more, and this time cancel the order for good.
    page.locator("#back").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel order").click()
    expect(page.get_by_text("The payment was stopped and your order is cancelled.")).to_be_visible()
    deliver_due_notifications(app)
    page.get_by_role("link", name="My orders", exact=True).click()
    status = page.get_by_test_id("order-row").get_by_test_id("order-status")
    expect(status).to_have_attribute("data-status", "FAILED")


def test_a_shopper_on_a_phone_can_buy_and_nothing_overflows_the_screen(
    make_context, app, shop_url, emulator
):
    page = make_context(viewport={"width": 375, "height": 740}, is_mobile=True).new_page()

    order_id = buy(page, app, shop_url, emulator, "dee@example.com", ["Lavender Fields"])

    for path in ("/", "/products/lavender-fields", "/cart", "/orders", f"/orders/{order_id}"):
        page.goto(shop_url + path)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"
    expect(page.get_by_test_id("order-status")).to_have_attribute("data-status", "PAID")
