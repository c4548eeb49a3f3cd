"""A chargeback in Chromium, on a desktop and a phone: the banner on the page the merchant
opens, the disputes page, the dispute, text evidence reviewed and submitted, and the banner
gone. Screenshots of each page at both widths are kept under test-artifacts/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.disputes.support import open_dispute, recorded_dispute
from tests.e2e.test_dashboard_modes import log_in
from tests.support.browser import ARTIFACTS
from tests.support.factories import make_user


def shot(page: Page, name: str, width: int) -> None:
    # Nothing wider than the screen: the banner and the tables fit or scroll in their box.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), name
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"disputes-{name}-{width}.png"), full_page=True)


@pytest.mark.parametrize("width", [1280, 390])
def test_a_merchant_sees_a_dispute_everywhere_and_answers_it_with_evidence(
    app, make_context, live_server, make_merchant, paid_payment, stripe_delivers, width
):
    merchant, _key = make_merchant(f"Disputed Shop {width}")
    make_user(app, merchant.id, f"owner{width}@shop.example")
    payment = paid_payment(merchant.id, amount=8900, merchant_reference=f"order-{width}")
    opened = open_dispute(app, stripe_delivers, payment.public_id, reason="product_not_received")
    dispute = recorded_dispute(app, opened["id"])
    page = make_context(viewport={"width": width, "height": 900}).new_page()

    log_in(page, live_server.url, f"owner{width}@shop.example")
    banner = page.get_by_role("alert").filter(has_text="1 dispute needs your response.")
    expect(banner).to_be_visible()
    shot(page, "banner-overview", width)

    banner.get_by_role("link", name="Respond to disputes").click()
    expect(page.get_by_role("heading", name="Disputes", level=1)).to_be_visible()
    due = page.locator("table").filter(has_text="Needing your response")
    expect(due).to_contain_text(dispute.public_id)
    expect(due).to_contain_text("89.00")
    expect(due).to_contain_text("product not received")
    shot(page, "list", width)

    due.get_by_role("link", name=dispute.public_id).click()
    expect(page.get_by_role("heading", name=re.compile("Dispute dsp_"))).to_be_visible()
    page.get_by_label(re.compile("Your evidence")).fill("Delivered on 3 December, signed.")
    shot(page, "detail", width)
    page.get_by_role("button", name="Review evidence…").click()
    expect(page.get_by_role("heading", name=re.compile("Submit this evidence"))).to_be_visible()
    shot(page, "confirm", width)
    page.get_by_role("button", name="Yes, submit the evidence").click()

    expect(page.get_by_text(re.compile(r"Evidence submitted for dispute dsp_"))).to_be_visible()
    expect(page.locator(".badge-under_review").first).to_have_text("Under review")
    expect(page.get_by_role("alert").filter(has_text="need")).to_have_count(0)
    shot(page, "submitted", width)
