"""A partial refund seen everywhere, in Chromium: a shopper pays in the demo shop, the merchant
refunds part of it from the dashboard, and the refund shows in the transactions list (marked
and filtered), on the refunds page, in the API, in both CSV exports and, told by PayBridge's
signed notification, on the shopper's order in the shop. Screenshots at 1280 and 390 px wide go
to test-artifacts/."""

from __future__ import annotations

import csv
import re

import requests
from playwright.sync_api import Page, expect

from app.extensions import db
from app.models import Payment
from tests.e2e.shop_flow import buy
from tests.e2e.test_dashboard import log_in
from tests.support.browser import shoot, within_screen
from tests.support.delivery import deliver_due_notifications
from tests.support.factories import make_user
from tests.support.waiting import wait_until


def download_csv(page: Page) -> list[dict]:
    with page.expect_download() as info:
        page.get_by_role("link", name="Export these as CSV").click()
    with open(info.value.path(), newline="") as handle:
        return list(csv.DictReader(handle))


def on_a_phone(page: Page, row) -> None:
    """At 390 px the refund's row reads as a card: its amount and status within the screen."""
    page.set_viewport_size({"width": 390, "height": 900})
    within_screen(page, row.locator("td[data-label=Amount]"), row.locator("td[data-label=Status]"))
    page.set_viewport_size({"width": 1280, "height": 900})


def test_a_partial_refund_shows_in_the_list_the_refunds_page_the_api_the_csv_and_the_shop(
    page, make_context, app, live_server, shop, emulator
):
    shopper = page
    order_id = buy(shopper, app, shop.url, emulator, "refund@example.com", ["Alpine Sunrise"])
    with app.app_context():
        payment = db.session.query(Payment).filter_by(merchant_reference=f"order-{order_id}").one()
        pay_id = payment.public_id
    make_user(app, shop.merchant_id, "owner@refunds.example")

    # The merchant refunds 9.50 of the 29.00 from the payment's page.
    dashboard = make_context().new_page()
    log_in(dashboard, live_server.url, "owner@refunds.example")
    dashboard.goto(f"{live_server.url}/dashboard/payments/{pay_id}")
    dashboard.get_by_role("link", name="Refund…").click()
    expect(dashboard.get_by_label("Amount to refund")).to_have_value("29.00")  # all that remains
    shoot(dashboard, "refunds-form")
    # More than was paid: refused, said why beside the field, nothing refunded.
    dashboard.get_by_label("Amount to refund").fill("30.00")
    dashboard.get_by_role("button", name="Review refund").click()
    expect(dashboard.get_by_text("At most 29.00 EUR remains to refund.")).to_be_visible()
    expect(dashboard.get_by_label("Amount to refund")).to_have_attribute("aria-invalid", "true")
    shoot(dashboard, "refunds-form-error")
    dashboard.get_by_label("Amount to refund").fill("9.50")
    dashboard.get_by_role("button", name="Review refund").click()
    dashboard.get_by_role("button", name="Yes, refund 9.50 EUR").click()
    flash = dashboard.get_by_role("status").filter(has_text="of 9.50 EUR succeeded")
    expect(flash).to_be_visible()
    refund_id = re.search(r"Refund (re_\w+) of", flash.inner_text()).group(1)

    # The transactions list marks it, and its refund filter finds it.
    dashboard.get_by_role("link", name="Transactions", exact=True).click()
    row = dashboard.locator("table tbody tr").filter(has_text=pay_id)
    expect(row).to_contain_text("Partially refunded")
    expect(row).to_contain_text("9.50 EUR refunded")
    shoot(dashboard, "refunds-transactions")
    dashboard.locator("summary", has_text="Filters").click()  # the panel is folded away
    dashboard.get_by_label("Refunds").select_option("Partially refunded")
    dashboard.get_by_role("button", name="Apply filters").click()
    expect(dashboard.locator("table tbody tr th a")).to_have_text([pay_id])
    exported = download_csv(dashboard)
    assert [(r["payment_id"], r["refunded_amount"], r["refund_state"]) for r in exported] == [
        (pay_id, "9.50", "partial")
    ]

    # The refunds page lists it, links to its payment, and exports it.
    dashboard.get_by_role("link", name="Refunds", exact=True).click()
    refund_row = dashboard.locator("table tbody tr").filter(has_text=refund_id)
    expect(refund_row).to_contain_text("9.50 EUR")
    expect(refund_row).to_contain_text("succeeded")
    shoot(dashboard, "refunds-page")
    on_a_phone(dashboard, refund_row)
    [refund_csv] = download_csv(dashboard)
    assert (refund_csv["refund_id"], refund_csv["payment_id"], refund_csv["amount"]) == (
        refund_id,
        pay_id,
        "9.50",
    )
    refund_row.get_by_role("link", name=pay_id).click()
    expect(dashboard.get_by_role("heading", name=f"Payment {pay_id}")).to_be_visible()

    # The shopper's customer page lists the refund; the customers list, the shopper.
    dashboard.goto(f"{live_server.url}/dashboard/customers/refund@example.com")
    refunds = dashboard.get_by_role("region", name="Refunds", exact=True)
    customer_refund = refunds.locator("tbody tr").filter(has_text=refund_id)
    expect(customer_refund).to_contain_text("9.50 EUR")
    on_a_phone(dashboard, customer_refund)
    shoot(dashboard, "refunds-customer")
    dashboard.goto(f"{live_server.url}/dashboard/customers")
    customer_row = dashboard.locator("table tbody tr").filter(has_text="refund@example.com")
    expect(customer_row).to_contain_text("19.50 EUR")  # net: 29.00 paid, 9.50 refunded
    dashboard.set_viewport_size({"width": 390, "height": 900})
    within_screen(dashboard, customer_row.locator("td[data-label=Paid]"))
    within_screen(dashboard, customer_row.locator("td[data-label=Net]"))
    shoot(dashboard, "refunds-customers")

    # The API, with the shop's own key, over HTTP.
    listed = requests.get(
        f"{live_server.url}/api/v1/refunds",
        params={"payment_id": pay_id},
        headers={"Authorization": f"Bearer {shop.api_key}"},
        timeout=10,
    ).json()
    assert [(r["id"], r["amount"], r["status"]) for r in listed["data"]] == [
        (refund_id, 950, "succeeded")
    ]
    one = requests.get(
        f"{live_server.url}/api/v1/refunds/{refund_id}",
        headers={"Authorization": f"Bearer {shop.api_key}"},
        timeout=10,
    )
    assert one.status_code == 200 and one.json() == listed["data"][0]

    # The shop learns it from its signed notification and shows it on the shopper's order.
    def order_shows_the_refund() -> bool:
        deliver_due_notifications(app)
        shopper.goto(f"{shop.url}/orders/{order_id}")  # the order page does not refresh itself
        return shopper.get_by_test_id("refund-status").count() > 0

    wait_until(order_shows_the_refund, timeout=30, interval=0.5, what="the refund on the order")
    expect(shopper.get_by_test_id("refund-status")).to_have_text("Partially refunded")
    expect(shopper.get_by_test_id("refunded-amount")).to_contain_text("9.50")
    expect(shopper.get_by_test_id("refund-row")).to_contain_text(refund_id)
    shoot(shopper, "refunds-shop-order")
