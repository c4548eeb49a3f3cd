"""A merchant in Chromium: log in, find a payment by its reference, read its whole story.

The payment is made the real way: a shopper buys in the demo shop (its own app and server),
pays on the emulator's hosted page, Stripe's webhook (from the emulator) moves it to SUCCESS and
PayBridge's notification is delivered to the shop's notify endpoint. Then the merchant looks it
up.
"""

from __future__ import annotations

import csv
import re
from datetime import timedelta

from playwright.sync_api import Page, expect

from app.extensions import db
from app.models import Dispute, utcnow
from tests.dashboard.support import PASSWORD, add_payment, make_user
from tests.dashboard.test_overview import add_dispute, attempt
from tests.e2e.shop_flow import buy
from tests.support.browser import shot
from tests.support.factories import add_notification, add_refund_rows


def log_in(page: Page, base_url: str, email: str) -> None:
    page.goto(base_url + "/dashboard/")
    expect(page).to_have_url(re.compile(r"/dashboard/login"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()


def test_merchant_finds_a_paid_shop_order_and_sees_timeline_and_delivered_notification(
    page, app, live_server, shop_url, emulator
):
    order_id = buy(page, app, shop_url, emulator, "grace@example.com", ["Alpine Sunrise"])
    reference = f"order-{order_id}"
    with app.app_context():
        from app.models import Payment

        # The shop is the demo merchant; its order id is the payment's merchant reference.
        payment = db.session.query(Payment).filter_by(merchant_reference=reference).one()
        merchant_id, public_id = payment.merchant_id, payment.public_id
    make_user(app, merchant_id, "owner@demo-shop.example")

    log_in(page, live_server.url, "owner@demo-shop.example")
    page.get_by_role("link", name="Transactions").click()
    page.get_by_label("Search").fill(reference)
    page.get_by_role("button", name="Search", exact=True).click()
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(reference)
    expect(rows.first).to_contain_text("SUCCESS")
    rows.first.get_by_role("link", name=public_id).click()

    expect(page.get_by_role("heading", name=f"Payment {public_id}")).to_be_visible()
    timeline = page.locator("ol.timeline > li")
    expect(timeline).to_have_count(3)
    expect(timeline.nth(0)).to_contain_text("CREATED")
    expect(timeline.nth(1)).to_contain_text("INITIATED")
    expect(timeline.nth(2)).to_contain_text("SUCCESS")
    expect(timeline.nth(2)).to_contain_text(re.compile(r"source: (webhook|return|recon)"))

    notifications = page.get_by_role("article", name=re.compile(r"Notification msg_"))
    # Its payment.initiated (no endpoint of this shop receives it), then its payment.succeeded.
    expect(notifications).to_have_count(2)
    expect(notifications.first).to_contain_text("payment.initiated")
    expect(notifications.first.locator(".badge-unrouted")).to_be_visible()
    notification = notifications.last
    expect(notification).to_contain_text("payment.succeeded")
    expect(notification.locator(".badge-delivered")).to_be_visible()
    expect(notification.locator("tbody tr").last).to_contain_text("200")

    events = page.get_by_role("region", name="PSP events received")
    expect(events).to_contain_text("checkout.session.completed")


def test_one_merchant_cannot_open_another_merchants_payment_by_url(
    page, app, live_server, make_merchant
):
    a, _ = make_merchant("Shop A")
    b, _ = make_merchant("Shop B")
    with app.app_context():
        theirs = add_payment(b.id, reference="b-secret-order")
        mine = add_payment(a.id, reference="a-order")
        db.session.commit()
        theirs_id, mine_id = theirs.public_id, mine.public_id
    make_user(app, a.id, "alice@a.example")
    log_in(page, live_server.url, "alice@a.example")

    response = page.goto(f"{live_server.url}/dashboard/payments/{theirs_id}")
    assert response.status == 404
    expect(page.get_by_role("heading", name="We can't find that page")).to_be_visible()
    expect(page.get_by_text("b-secret-order")).to_have_count(0)

    response = page.goto(f"{live_server.url}/dashboard/payments/{mine_id}")
    assert response.status == 200
    expect(page.get_by_text("a-order").first).to_be_visible()


def test_filters_and_csv_export_give_exactly_the_matching_rows(
    page, app, live_server, make_merchant
):
    m, _ = make_merchant("Filter Shop")
    now = utcnow()
    with app.app_context():
        expected = [
            add_payment(
                m.id,
                reference="usd-big",
                status="SUCCESS",
                amount=5000,
                currency="USD",
                created_at=now - timedelta(minutes=1),
            ),
            add_payment(
                m.id,
                reference="usd-small",
                status="SUCCESS",
                amount=1999,
                currency="USD",
                created_at=now - timedelta(minutes=2),
            ),
        ]
        add_payment(m.id, reference="usd-tiny", status="SUCCESS", amount=500, currency="USD")
        add_payment(m.id, reference="usd-failed", status="FAILED", amount=5000, currency="USD")
        add_payment(m.id, reference="eur-big", status="SUCCESS", amount=5000, currency="EUR")
        db.session.commit()
        expected_ids = [p.public_id for p in expected]
    make_user(app, m.id, "filter@shop.example")
    log_in(page, live_server.url, "filter@shop.example")
    page.get_by_role("link", name="Transactions").click()
    page.locator("summary", has_text="Filters").click()  # the panel is folded away
    page.get_by_label("Status").select_option("SUCCESS")
    page.get_by_label("Currency").fill("usd")
    page.get_by_label("Amount from").fill("19.99")
    page.get_by_role("button", name="Apply filters").click()

    links = page.locator("table tbody tr th a")
    expect(links).to_have_count(2)
    assert links.all_inner_texts() == expected_ids

    with page.expect_download() as info:
        page.get_by_role("link", name="Export these as CSV").click()
    path = info.value.path()
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["payment_id"] for r in rows] == expected_ids
    assert [r["amount"] for r in rows] == ["50.00", "19.99"]


def a_shop_with_one_of_everything(app, merchant_id: int) -> tuple[str, str]:
    """A paid payment tried twice (declined first, with the PSP's words), refunded in part and
    disputed, its notification failing at an endpoint; (payment id, dispute id)."""
    with app.app_context():
        paid = add_payment(
            merchant_id, reference="phone-order", email="someone@a-rather-long-domain.example"
        )
        for i in range(2):
            add_payment(merchant_id, reference=f"phone-{i}", email=f"someone{i}@shop.example")
        attempt(
            paid, "failed", method_type="card", card_brand="visa", card_last4="0002",
            decline_code="insufficient_funds",
            failure_message="Your card has insufficient funds to complete this purchase.",
        )  # fmt: skip
        attempt(paid, "succeeded", method_type="card", card_brand="mastercard", card_last4="4444")
        add_refund_rows(merchant_id, amount=950)
        add_dispute(paid, amount=1000, created_at=utcnow())
        add_notification(paid, status="failed", attempts=[500])
        db.session.commit()
        dispute = db.session.query(Dispute).filter_by(payment_id=paid.id).one()
        return paid.public_id, dispute.public_id


def test_every_page_fits_a_phone_and_the_menu_works_by_keyboard(
    make_context, app, live_server, make_merchant
):
    """At 390 px nothing scrolls sideways: the navigation folds into a menu, a payment's
    attempts read as cards with the decline message in view."""
    m, _ = make_merchant("Phone Shop")
    pay_id, dispute_id = a_shop_with_one_of_everything(app, m.id)
    make_user(app, m.id, "phone@shop.example")
    # make_context (tests/support/browser.py) closes it and screenshots its pages on failure.
    page = make_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()
    page.goto(live_server.url + "/dashboard/login")
    # keyboard: the first Tab lands on the skip link, which is then visible
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_label("Email").focus()
    page.keyboard.type("phone@shop.example")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()

    # The menu: folded, it names the page you are on; opened by keyboard, every link in view.
    menu = page.locator("summary", has_text="Menu")
    expect(menu).to_have_text("Menu: Overview")
    nav = page.get_by_role("navigation", name="Dashboard")
    expect(nav).to_be_hidden()
    menu.focus()
    page.keyboard.press("Enter")
    links = nav.get_by_role("link")
    expect(links.first).to_be_visible()
    expect(nav.locator("[aria-current=page]")).to_have_text("Overview")
    for box in (link.bounding_box() for link in links.all()):
        assert 0 <= box["x"] and box["x"] + box["width"] <= 390, box
    page.keyboard.press("Tab")
    expect(links.first).to_be_focused()
    shot(page, "dashboard-phone-menu-open", 390)
    pages = [link.get_attribute("href") for link in links.all()]
    assert len(pages) == 13 and "/dashboard/settings" in pages, pages
    nav.get_by_role("link", name="Disputes").click()
    expect(page.get_by_role("heading", name="Disputes", level=1)).to_be_visible()
    expect(page.locator("summary", has_text="Menu")).to_have_text("Menu: Disputes")
    expect(nav).to_be_hidden()

    pages += [f"/dashboard/payments/{pay_id}", f"/dashboard/disputes/{dispute_id}"]
    for path in pages:
        page.goto(live_server.url + path)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        # nothing wider than the screen: lists read as cards, wide tables scroll in their box
        fits = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        assert page.evaluate(fits), path

    # The payment's attempts: each one's time, outcome, method, code and message in view.
    page.goto(f"{live_server.url}/dashboard/payments/{pay_id}")
    attempts = page.locator("section", has=page.locator("#attempts-heading"))
    declined = attempts.locator("tbody tr").first
    for text in ("Declined", "Visa •••• 0002", "insufficient_funds", "insufficient funds"):
        cell = declined.locator("td", has_text=text)
        expect(cell).to_be_visible()
        box = cell.bounding_box()
        assert 0 <= box["x"] and box["x"] + box["width"] <= 390, (text, box)
    expect(declined.locator("time")).to_be_visible()
    attempts.scroll_into_view_if_needed()
    shot(page, "dashboard-phone-payment", 390)

    # Wider, the links show unfolded (no menu button) and are next after the brand by keyboard.
    page.set_viewport_size({"width": 1280, "height": 800})
    expect(page.locator("summary", has_text="Menu")).to_be_hidden()
    expect(nav.get_by_role("link", name="Transactions")).to_have_attribute("aria-current", "page")
    page.get_by_role("link", name="PayBridge").focus()
    page.keyboard.press("Tab")
    expect(links.first).to_be_focused()
    expect(declined.locator("td").last).to_be_visible()  # the attempts as a table again
    shot(page, "dashboard-payment", 1280)
