"""Attempts and cancellation in Chromium: a shopper is declined on the hosted page and pays with
another card; the merchant's payment page shows both attempts (decline code, brand, last 4) and
the card that paid. Another shopper leaves by the hosted page's back link and never comes back: once
the checkout expires the payment reads "Canceled" (not a red failure) on its page and in the
list. Screenshots at 1280 and 390 px go
to test-artifacts/."""

from __future__ import annotations

import re
import secrets

from playwright.sync_api import expect

from app.tasks.payments import learn_payment_methods
from tests.e2e.test_dashboard import log_in
from tests.e2e.test_hosted_outcomes import (  # noqa: F401 (stripe_delivers: a fixture)
    MERCHANT_CANCEL,
    MERCHANT_SUCCESS,
    Api,
    answer_merchant_pages,
    expire_by_the_clock,
    pay_with_card,
    stripe_delivers,
)
from tests.support.browser import shoot
from tests.support.factories import make_user
from tests.support.waiting import wait_until


def test_a_decline_then_a_success_and_a_cancellation_on_the_payment_pages(
    page,
    make_context,
    app,
    live_server,
    stripe_delivers,  # noqa: F811 (the fixture imported above)
    make_merchant,
):
    merchant, raw_key = make_merchant("Attempts Shop", notify_url="http://127.0.0.1:9/notify")
    api = Api(live_server.url, raw_key)
    answer_merchant_pages(page)

    # Declined (insufficient funds), then paid with a Mastercard.
    paid = api.create_payment(f"order-attempts-{secrets.token_hex(4)}")
    page.goto(paid["checkout_url"])
    pay_with_card(page, "4000 0000 0000 9995")
    expect(page.get_by_role("alert")).to_contain_text("insufficient funds")
    pay_with_card(page, "5555 5555 5555 4444")
    expect(page).to_have_url(re.compile(re.escape(MERCHANT_SUCCESS)))
    api.wait_for_status(paid["id"], "SUCCESS")

    def learned():
        # The worker's periodic job (no worker runs here): how a webhook-moved payment was
        # paid. The shopper's return, when it comes first, has recorded it already.
        with app.app_context():
            learn_payment_methods()
        answer = api.payment(paid["id"])
        return answer["payment_method"] and len(answer["attempts"]) == 2 and answer

    answer = wait_until(learned, what="both attempts and the method in the API", timeout=20)
    declined, succeeded = answer["attempts"]
    assert (declined["outcome"], declined["decline_code"]) == ("failed", "insufficient_funds")
    assert (declined["card_brand"], declined["card_last4"]) == ("visa", "9995")
    assert (succeeded["outcome"], succeeded["card_last4"]) == ("succeeded", "4444")
    assert answer["payment_method"]["brand"] == "mastercard"

    # Another shopper leaves through the hosted page's back link.
    left = api.create_payment(f"order-left-{secrets.token_hex(4)}")
    page.goto(left["checkout_url"])
    page.get_by_role("link", name=re.compile("Back to the merchant")).click()
    expect(page).to_have_url(re.compile(re.escape(MERCHANT_CANCEL)))
    # As on Stripe the checkout stays open (the shopper may come back) until it expires.
    assert api.payment(left["id"])["status"] == "INITIATED"
    expire_by_the_clock(stripe_delivers, left["expires_at"])
    canceled = api.wait_for_status(left["id"], "FAILED")
    assert canceled["failure_reason"] == "canceled_by_shopper"

    make_user(app, merchant.id, "owner@attempts.example")
    dashboard = make_context().new_page()
    log_in(dashboard, live_server.url, "owner@attempts.example")

    dashboard.goto(f"{live_server.url}/dashboard/payments/{paid['id']}")
    attempts = dashboard.locator("section", has=dashboard.locator("#attempts-heading"))
    rows = attempts.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Declined")
    expect(rows.nth(0)).to_contain_text("insufficient_funds")
    expect(rows.nth(0)).to_contain_text("Visa •••• 9995")
    expect(rows.nth(1)).to_contain_text("Succeeded")
    expect(rows.nth(1)).to_contain_text("Mastercard •••• 4444")
    expect(dashboard.locator("dd[data-method=card]")).to_contain_text("Mastercard •••• 4444")
    shoot(dashboard, "attempts-declined-then-paid")

    dashboard.goto(f"{live_server.url}/dashboard/payments/{left['id']}")
    expect(dashboard.locator(".page-head .badge").first).to_have_text("Canceled")
    expect(dashboard.locator(".page-head .badge-FAILED")).to_have_count(0)
    expect(dashboard.locator("[data-failure-reason]")).to_have_text("Canceled by the shopper")
    shoot(dashboard, "attempts-canceled")

    dashboard.goto(f"{live_server.url}/dashboard/payments?q={left['id']}")
    expect(dashboard.locator("tbody tr")).to_have_count(1)
    expect(dashboard.locator("tbody tr .badge").first).to_have_text("Canceled")
    dashboard.goto(f"{live_server.url}/dashboard/payments?failure_reason=canceled_by_shopper")
    expect(dashboard.locator("tbody tr")).to_have_count(1)
    dashboard.goto(f"{live_server.url}/dashboard/payments?q=4444")
    expect(dashboard.locator("tbody tr")).to_have_count(1)
    expect(dashboard.locator("tbody tr")).to_contain_text("Mastercard •••• 4444")
    shoot(dashboard, "attempts-list-by-last4")

    # On the overview the cancellation counts as canceled, not as a decline: no failed payment,
    # and the authorization rate is the two card attempts' (one accepted), not the left one's.
    dashboard.goto(f"{live_server.url}/dashboard/?range=today")

    def figure(label: str):
        title = dashboard.locator(".label", has_text=re.compile(f"^{label}$"))
        return dashboard.locator(".figure", has=title).locator(".value")

    expect(figure("Payments started")).to_have_text("2")
    expect(figure("Failed")).to_have_text("0")
    expect(figure("Canceled")).to_have_text("1")
    expect(figure("Authorization rate")).to_have_text(re.compile(r"^50\.0\s%$"))
    expect(figure("Conversion rate")).to_have_text(re.compile(r"^50\.0\s%$"))
    shoot(dashboard, "attempts-overview-after-cancel")
