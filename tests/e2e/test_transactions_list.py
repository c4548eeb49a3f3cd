"""The transactions list fits a screen, in Chromium, on a desktop (1280 px) and a phone (390 px):
the first rows show without scrolling, a row opens its payment (by a click anywhere on it or by
keyboard on its link), the filters fold away and show as chips, the beginning of an email finds
the customer's payments, and the customer's page shows their totals. Screenshots of each page
at both widths are kept under test-artifacts/."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from app.extensions import db
from app.models import utcnow
from tests.e2e.test_dashboard_modes import log_in
from tests.support.browser import ARTIFACTS, nav_link, shot, within_screen
from tests.support.factories import add_payment, make_user

SIZES = {1280: 800, 390: 844}  # a laptop, an iPhone 14
FIRST_ROWS = 3  # at least these rows show whole without scrolling


def shoot(page: Page, name: str, width: int) -> None:
    """The page at this width, whole and as the screen first shows it."""
    shot(page, f"transactions-{name}", width)
    page.screenshot(path=str(ARTIFACTS / f"transactions-{name}-{width}-screen.png"))


@pytest.fixture
def shop(app, make_merchant) -> dict:
    """A shop with a busy list (40 payments), Grace's among them, one refunded in part."""
    merchant, _ = make_merchant("Alpine Prints")
    now = utcnow()
    with app.app_context():
        shoppers = ["leo@example.com", "mia@example.org", "noah@example.net", None]
        for i in range(36):
            add_payment(
                merchant.id,
                reference=f"order-{2000 + i}",
                status=("SUCCESS", "SUCCESS", "FAILED", "INITIATED")[i % 4],
                amount=1500 + 250 * i,
                currency=("EUR", "EUR", "USD")[i % 3],
                email=shoppers[i % 4],
                created_at=now - timedelta(hours=2 + i),
            )
        graces = [
            add_payment(
                merchant.id,
                reference=f"order-19{i:02d}",
                amount=amount,
                currency="EUR",
                email="Grace.Hopper@Example.com",
                created_at=now - timedelta(minutes=5 + 20 * i),
            )
            for i, amount in enumerate((2900, 4500, 1250))
        ]
        graces[1].count_refunded(1000)
        newest = add_payment(
            merchant.id,
            reference="order-2100",
            amount=8900,
            email="ada@example.com",
            created_at=now - timedelta(minutes=1),
        )
        db.session.commit()
        ids = {"newest": newest.public_id, "graces": [g.public_id for g in graces]}
    make_user(app, merchant.id, "owner@alpine.example")
    return ids


@pytest.mark.parametrize("width", list(SIZES))
def test_the_list_fits_the_screen_rows_open_filters_fold_and_email_prefix_finds(
    page, live_server, shop, width
):
    page.set_viewport_size({"width": width, "height": SIZES[width]})
    log_in(page, live_server.url, "owner@alpine.example")
    nav_link(page, "Transactions").click()
    rows = page.locator("table.tx-table tbody tr")
    expect(rows).to_have_count(40)

    # The first rows show whole, without scrolling.
    height = page.evaluate("window.innerHeight")
    for i in range(FIRST_ROWS):
        box = rows.nth(i).bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height, (i, box)
    expect(rows.first).to_contain_text("89.00 EUR")
    # Grace's refunded payment is marked in the list.
    expect(rows.filter(has_text=shop["graces"][1])).to_contain_text("Partially refunded")

    # The filters are folded away until asked for.
    status = page.get_by_label("Status")
    expect(status).to_be_hidden()
    shoot(page, "list", width)
    page.locator("summary", has_text="Filters").click()
    expect(status).to_be_visible()
    shoot(page, "filters-open", width)
    status.select_option("SUCCESS")
    page.get_by_label("Refunds").select_option("Any refund")
    page.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(shop["graces"][1])
    chips = page.get_by_role("list", name="Active filters")
    expect(chips).to_contain_text("Status: Success")
    expect(chips).to_contain_text("Refunds: Any refund")
    shoot(page, "filtered", width)
    # The panel folds away again once applied: the filtered rows are where the eye is.
    expect(page.get_by_label("Status", exact=True)).to_be_hidden()
    box = rows.first.bounding_box()
    assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= height, box
    page.get_by_role("link", name="Remove filter Refunds: Any refund").click()
    expect(chips).not_to_contain_text("Refunds")
    expect(chips).to_contain_text("Status: Success")
    page.get_by_role("link", name="Remove filter Status: Success").click()
    expect(page.get_by_role("list", name="Active filters")).to_have_count(0)
    expect(page.get_by_label("Status")).to_be_hidden()  # folded again: no filter in use
    expect(rows).to_have_count(40)

    # The beginning of an email, in any case, finds the customer's payments.
    page.get_by_label("Search").fill("GRACE")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(rows).to_have_count(3)
    expect(rows).to_contain_text(["grace.hopper@example.com"] * 3)
    shoot(page, "search", width)

    # A click anywhere on a row (here: on its amount, as a person's mouse) opens the payment.
    amount = rows.first.locator("td.tx-amount").bounding_box()
    assert amount is not None
    page.mouse.click(amount["x"] + amount["width"] / 2, amount["y"] + amount["height"] / 2)
    expect(page).to_have_url(re.compile(rf"/dashboard/payments/{shop['graces'][0]}$"))
    page.go_back()
    # By keyboard: the row's payment id is a real link.
    link = rows.nth(1).get_by_role("link", name=shop["graces"][1])
    link.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/dashboard/payments/{shop['graces'][1]}$"))

    # The payment links to its customer, whose page has the totals.
    page.get_by_role("link", name="grace.hopper@example.com").click()
    expect(page.get_by_role("heading", name="grace.hopper@example.com", level=1)).to_be_visible()
    eur = page.locator('[data-currency="EUR"]')
    expect(eur).to_contain_text("3 payments, 3 paid")
    expect(eur).to_contain_text("76.50 EUR")  # 86.50 paid, 10.00 refunded
    expect(eur).to_contain_text("86.50 EUR")
    expect(eur).to_contain_text("10.00 EUR")
    paid = page.locator("table.tx-table tbody tr")
    expect(paid).to_have_count(3)
    within_screen(page, paid.first.locator("td.tx-amount"), paid.first.locator("td.tx-status"))
    shoot(page, "customer", width)

    # The customers list, searched by the beginning of an email.
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="Customers").click()
    customers = page.locator("table tbody tr")
    expect(customers).to_have_count(5)
    first = customers.first
    within_screen(page, first.locator("td[data-label=Paid]"), first.locator("td[data-label=Net]"))
    shoot(page, "customers", width)
    page.get_by_label("Search customers").fill("gr")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(customers).to_have_count(1)
    expect(customers.first).to_contain_text("86.50 EUR")
