"""A merchant who is live flips the dashboard's test-data switch in Chromium: the orange banner
appears on every page and only test payments are listed, then back again; on a desktop and on
a phone. Screenshots of both widths are kept under test-artifacts/ to look at."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from app.accounts.api_keys import create_api_key
from app.extensions import db
from app.models import Merchant
from tests.support.browser import ARTIFACTS, nav_link
from tests.support.factories import PASSWORD, add_payment, make_user


def live_merchant_with_payments(app, make_merchant) -> tuple[int, dict[str, str]]:
    """A merchant with a live key and a payment in each mode: (merchant id, references by mode)."""
    merchant, _ = make_merchant("Both Modes Shop")
    with app.app_context():
        create_api_key(db.session.get(Merchant, merchant.id), "live", livemode=True)
        add_payment(merchant.id, reference="order-live-1", amount=4200, livemode=True)
        add_payment(merchant.id, reference="order-test-1", amount=1300, livemode=False)
        db.session.commit()
    return merchant.id, {"live": "order-live-1", "test": "order-test-1"}


def log_in(page: Page, base_url: str, email: str) -> None:
    page.goto(base_url + "/dashboard/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()


def shows_only(page: Page, shown: str, hidden: str) -> None:
    table = page.locator("table tbody")
    expect(table).to_contain_text(shown)
    expect(table).not_to_contain_text(hidden)


def flip_to_test_data_and_back(page: Page, base_url: str, refs: dict[str, str], width: int):
    page.goto(base_url + "/dashboard/payments")
    switch = page.get_by_role("switch", name="Test data")
    banner = page.get_by_role("status").filter(has_text="Viewing test data")
    expect(switch).to_have_attribute("aria-checked", "false")  # live first: it has a live key
    expect(banner).to_have_count(0)
    shows_only(page, refs["live"], refs["test"])

    switch.click()
    expect(page).to_have_url(re.compile(r"/dashboard/payments$"))  # back on the same page
    expect(page.get_by_role("switch", name="Test data")).to_have_attribute("aria-checked", "true")
    expect(banner).to_be_visible()
    shows_only(page, refs["test"], refs["live"])
    # nothing wider than the screen, switch and banner included
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-test-data-{width}.png"), full_page=True)

    # Every page carries the banner while test data is shown.
    nav_link(page, "Overview").click()
    expect(banner).to_be_visible()
    expect(page.locator("body")).to_have_class("test-data")

    page.get_by_role("switch", name="Test data").click()
    expect(banner).to_have_count(0)
    expect(page.get_by_role("switch", name="Test data")).to_have_attribute("aria-checked", "false")
    page.screenshot(path=str(ARTIFACTS / f"dashboard-live-data-{width}.png"), full_page=True)


def test_a_live_payment_opened_while_viewing_test_data_says_so_and_switches(
    page, app, live_server, make_merchant
):
    merchant_id, refs = live_merchant_with_payments(app, make_merchant)
    make_user(app, merchant_id, "link@shop.example")
    log_in(page, live_server.url, "link@shop.example")
    page.get_by_role("link", name="Transactions").click()
    page.get_by_role("link", name=re.compile(r"^pay_")).click()  # the one live payment
    payment_url = page.url
    page.get_by_role("switch", name="Test data").click()
    expect(page).to_have_url(payment_url)  # a shared link of a live payment, seen in test mode

    notice = page.get_by_role("alert").filter(has_text="This is a live payment")
    expect(notice).to_contain_text("you are viewing test data")
    expect(page.get_by_role("link", name="Refund…")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "dashboard-other-mode-1280.png"), full_page=True)
    notice.get_by_role("button", name="Switch to live data").click()
    expect(page).to_have_url(payment_url)
    expect(notice).to_have_count(0)
    expect(page.get_by_role("link", name="Refund…")).to_be_visible()
    expect(page.get_by_text(refs["live"]).first).to_be_visible()


def test_the_test_data_switch_on_a_desktop_and_a_phone(
    make_context, app, live_server, make_merchant
):
    merchant_id, refs = live_merchant_with_payments(app, make_merchant)
    make_user(app, merchant_id, "modes@shop.example")
    for width, options in ((1280, {}), (390, {"is_mobile": True})):
        page = make_context(viewport={"width": width, "height": 844}, **options).new_page()
        log_in(page, live_server.url, "modes@shop.example")
        flip_to_test_data_and_back(page, live_server.url, refs, width)
