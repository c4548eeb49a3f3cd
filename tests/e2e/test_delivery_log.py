"""The delivery log in Chromium, on a laptop and on a phone: the failing deliveries filtered,
one delivery's attempts (request and response), redelivering it, and the bulk confirmation that
says how many it will send. Screenshots in test-artifacts/."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from app.extensions import db
from app.models import NotificationDelivery
from tests.dashboard.support import make_user
from tests.e2e.test_dashboard import log_in
from tests.support.browser import ARTIFACTS, nav_link
from tests.support.delivery_log import build_log_world


def _fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_a_merchant_reads_the_log_and_redelivers(
    make_context, app, live_server, make_merchant, worker, notify_config
):
    merchant, _ = make_merchant("Log Shop", None)
    make_user(app, merchant.id, "log@shop.example")
    world = build_log_world(app, merchant.id, worker, notify_config)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        world.failing.status = 200
        for width in (1280, 390):
            page = make_context(viewport={"width": width, "height": 900}).new_page()
            log_in(page, live_server.url, "log@shop.example")
            expect(page.get_by_role("link", name="Notifications failing now")).to_be_visible()
            nav_link(page, "Delivery log").click()
            expect(page.get_by_role("heading", name="Delivery log", level=1)).to_be_visible()
            expect(page.locator("tbody tr")).to_have_count(8)
            expect(page.get_by_label("Status")).to_be_hidden()  # folded away until asked for
            page.get_by_text("Filters", exact=True).click()
            page.get_by_label("Status").select_option("failed")
            page.get_by_role("button", name="Apply filters").click()
            rows = page.locator("tbody tr")
            expect(rows).to_have_count(3 if width == 1280 else 2)  # one redelivered at 1280
            page.screenshot(path=str(ARTIFACTS / f"delivery-log-{width}.png"), full_page=True)
            assert _fits(page)

            rows.first.get_by_role("link").first.click()
            expect(page.get_by_role("heading", name="Attempts, newest first")).to_be_visible()
            expect(page.get_by_text("webhook-signature").first).to_be_visible()
            expect(page.get_by_text(re.compile(r"HTTP 500")).first).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / f"delivery-{width}.png"), full_page=True)
            assert _fits(page)
            delivery_id = int(page.url.rsplit("/", 1)[1])
            page.get_by_role("link", name="Redeliver…").click()
            page.get_by_role("button", name="Yes, redeliver").click()
            expect(page.get_by_text("goes to")).to_be_visible()
            with app.app_context():
                assert db.session.get(NotificationDelivery, delivery_id).status == "pending"
            worker.run_until(
                lambda d=delivery_id: db.session.get(NotificationDelivery, d).status == "delivered",
                what="the redelivery",
            )

        # The bulk confirmation, at both widths, for what is still failed.
        for width in (1280, 390):
            page = make_context(viewport={"width": width, "height": 900}).new_page()
            log_in(page, live_server.url, "log@shop.example")
            page.goto(
                f"{live_server.url}/dashboard/notification-endpoints/"
                f"{world.failing_endpoint}/redeliver"
            )
            page.get_by_role("button", name="Count failed deliveries").click()
            expect(
                page.get_by_role("heading", name=re.compile(r"Redeliver 1 failed delivery to"))
            ).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / f"redeliver-failed-{width}.png"), full_page=True)
            assert _fits(page)
    finally:
        world.stop()
