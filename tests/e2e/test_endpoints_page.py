"""A merchant manages notification endpoints in Chromium, on a laptop and on a phone: adds one
for two event types and copies its secret once, edits it, disables it, deletes it."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from app.extensions import db
from app.models import NotificationEndpoint
from tests.dashboard.support import make_user
from tests.e2e.test_dashboard import log_in
from tests.support.browser import ARTIFACTS, nav_link


def test_a_merchant_adds_edits_disables_and_deletes_an_endpoint(
    make_context, app, live_server, make_merchant, receiver
):
    merchant, _ = make_merchant("Endpoint Shop", "https://orders.example/paybridge")
    make_user(app, merchant.id, "hooks@shop.example")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        page = make_context(viewport={"width": width, "height": 900}).new_page()
        log_in(page, live_server.url, "hooks@shop.example")
        nav_link(page, "Notification endpoints").click()
        expect(page.get_by_role("heading", name="Notification endpoints", level=1)).to_be_visible()
        expect(page.get_by_role("link", name="https://orders.example/paybridge")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / f"endpoints-list-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")

        url = f"{receiver.url}?w={width}"
        page.get_by_label("URL", exact=True).fill(url)
        page.get_by_label("Description").fill("refunds service")
        page.get_by_label(re.compile(r"^refund\.succeeded")).check()
        page.get_by_label(re.compile(r"^refund\.failed")).check()
        page.get_by_role("button", name="Add endpoint").click()

        secret = page.locator("#signing-secret")
        expect(secret).to_have_text(re.compile(r"^whsec_"))
        page.screenshot(path=str(ARTIFACTS / f"endpoint-created-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        with app.app_context():
            stored = db.session.scalars(
                db.select(NotificationEndpoint).where(NotificationEndpoint.url == url)
            ).one()
            assert stored.event_types == ["refund.succeeded", "refund.failed"]
            assert stored.signing_secret == secret.inner_text()

        page.get_by_label(re.compile(r"^Every event type")).check()
        page.get_by_role("button", name="Save endpoint").click()
        expect(page.get_by_text("The endpoint is saved.")).to_be_visible()
        expect(page.locator("#signing-secret")).to_have_count(0)  # shown once only
        page.get_by_role("button", name="Disable").click()
        expect(page.get_by_text("The endpoint is disabled")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / f"endpoint-disabled-{width}.png"), full_page=True)
        page.get_by_role("link", name="Delete…").click()
        page.get_by_role("button", name="Yes, delete it").click()
        expect(page.get_by_text(f"The endpoint {url} is deleted.")).to_be_visible()
        expect(page.get_by_role("link", name=url)).to_have_count(0)
        with app.app_context():
            gone = db.session.get(NotificationEndpoint, stored.id)
            assert gone.event_types == ["*"] and gone.deleted_at is not None
