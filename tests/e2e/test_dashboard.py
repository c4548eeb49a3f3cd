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
from app.models import utcnow
from tests.dashboard.support import PASSWORD, add_payment, make_user
from tests.e2e.shop_flow import buy


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


def test_dashboard_works_on_a_phone_and_by_keyboard(make_context, app, live_server, make_merchant):
    m, _ = make_merchant("Phone Shop")
    with app.app_context():
        for i in range(3):
            add_payment(
                m.id, reference=f"phone-{i}", email=f"someone{i}@a-rather-long-domain.example"
            )
        db.session.commit()
    make_user(app, m.id, "phone@shop.example")
    # make_context (tests/support/browser.py) closes it and screenshots its pages on failure.
    page = make_context(viewport={"width": 375, "height": 740}, is_mobile=True).new_page()
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
    for path in (
        "/dashboard/",
        "/dashboard/payments",
        "/dashboard/settings",
        "/dashboard/api-keys",
    ):
        page.goto(live_server.url + path)
        # nothing wider than the screen: wide tables scroll inside their own box
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
