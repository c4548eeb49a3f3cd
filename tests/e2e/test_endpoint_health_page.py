"""Endpoint health and test events in Chromium, on a laptop and on a phone: an endpoint the
worker disabled for failing shows as a banner on every page; its page sends a test event and
shows the request and the answer; enabling it offers to redeliver what it missed."""

from __future__ import annotations

from playwright.sync_api import expect

from app.extensions import db
from app.models import NotificationEndpoint, PaymentStatus, StatusSource
from app.payments.state import lock_payment, transition
from tests.dashboard.support import make_user
from tests.e2e.test_dashboard import log_in
from tests.support.browser import ARTIFACTS
from tests.support.factories import add_endpoint, make_payment


def _failing_endpoint(app, merchant_id: int, receiver, worker) -> tuple[int, str]:
    """An endpoint the worker disabled: its receiver answered 500 to every attempt for longer
    than NOTIFY_ENDPOINT_DISABLE_AFTER_SECONDS (1 s here)."""
    with app.app_context():
        endpoint = add_endpoint(merchant_id, receiver.url, ["*"])
        db.session.commit()
        endpoint_id, public_id = endpoint.id, endpoint.public_id
    receiver.status = 500
    payment_id = make_payment(app, merchant_id, PaymentStatus.CREATED).id
    for target in (PaymentStatus.INITIATED, PaymentStatus.SUCCESS):
        with app.app_context():
            transition(lock_payment(payment_id), target, source=StatusSource.WEBHOOK)
            db.session.commit()
    worker.run_until(
        lambda: not db.session.get(NotificationEndpoint, endpoint_id).enabled,
        what="the endpoint disabled for failing",
    )
    return endpoint_id, public_id


def test_the_failing_banner_a_test_event_and_enabling_again(
    make_context, app, live_server, make_merchant, receiver, notify_config, worker
):
    saved = app.config["NOTIFY_ENDPOINT_DISABLE_AFTER_SECONDS"]
    notify_config.update(NOTIFY_RETRY_SCHEDULE=[1] * 5)
    app.config["NOTIFY_ENDPOINT_DISABLE_AFTER_SECONDS"] = 1
    try:
        merchant, _ = make_merchant("Health Shop", None)
        make_user(app, merchant.id, "health@shop.example")
        _, public_id = _failing_endpoint(app, merchant.id, receiver, worker)
    finally:
        app.config["NOTIFY_ENDPOINT_DISABLE_AFTER_SECONDS"] = saved
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    receiver.extra_headers = {"X-Shop": "got it"}

    for width in (1280, 390):
        receiver.status = 200
        page = make_context(viewport={"width": width, "height": 900}).new_page()
        log_in(page, live_server.url, "health@shop.example")
        banner = page.locator("#endpoint-banner")
        expect(banner).to_contain_text("1 notification endpoint disabled")
        expect(banner.get_by_role("link", name=receiver.url)).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / f"endpoint-failing-banner-{width}.png"))
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")

        banner.get_by_role("link", name=receiver.url).click()
        expect(page.get_by_text("every attempt failed for too long").first).to_be_visible()
        page.get_by_label("Type of test event").select_option("refund.succeeded")
        page.get_by_role("button", name="Send test event").click()
        result = page.locator("#test-result")
        expect(result).to_contain_text("HTTP 200")
        expect(result).to_contain_text("webhook-signature")
        expect(result).to_contain_text("X-Shop: got it")
        expect(result).to_contain_text('"test": true')
        result.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"endpoint-test-event-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        assert receiver.requests[-1].json()["type"] == "refund.succeeded"

        # The receiver is down: the test event says so, nothing else.
        receiver.status = 503
        page.get_by_role("button", name="Send test event").click()
        expect(page.locator("#test-result")).to_contain_text("HTTP 503")
        page.screenshot(path=str(ARTIFACTS / f"endpoint-test-event-failed-{width}.png"))

        if width == 390:
            receiver.status = 200
            page.get_by_role("link", name="Enable…").click()
            expect(page.locator("#missed-count")).to_contain_text("It missed 2 notifications")
            page.screenshot(path=str(ARTIFACTS / f"endpoint-enable-{width}.png"), full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
            page.get_by_role("button", name="Yes, enable it").click()
            expect(page.get_by_text("2 notification(s) it missed are on their way")).to_be_visible()
            expect(page.locator("#endpoint-banner")).to_have_count(0)
    worker.run_until(lambda: len([r for r in receiver.requests if "test" not in r.json()]) == 2)
