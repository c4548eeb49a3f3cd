"""A chargeback in Chromium, on a desktop and a phone: the banner on the page the merchant
opens, the disputes page, the dispute, text evidence reviewed and submitted, and the banner
gone; then a demo shop order disputed, answered and decided (won, lost) through the emulator, up
to the shopper's order. Screenshots of each page at both widths are kept under test-artifacts/."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from app.models import Payment
from tests.disputes.support import open_dispute, recorded_dispute
from tests.e2e.shop_flow import buy
from tests.e2e.test_dashboard_modes import log_in
from tests.support.browser import shoot, shot, within_screen
from tests.support.delivery import deliver_due_notifications
from tests.support.factories import make_user
from tests.support.rows import get_row
from tests.support.waiting import wait_until


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
    banner = page.get_by_role("status").filter(has_text="1 dispute needs your response.")
    expect(banner).to_be_visible()
    shot(page, "disputes-banner-overview", width)

    banner.get_by_role("link", name="Respond to disputes").click()
    expect(page.get_by_role("heading", name="Disputes", level=1)).to_be_visible()
    due = page.locator("table").filter(has_text="Needing your response")
    expect(due).to_contain_text(dispute.public_id)
    expect(due).to_contain_text("89.00")
    expect(due).to_contain_text("product not received")
    # Each table's first row shows its amount and status on the screen (a card on a phone).
    every = page.locator("table").filter(has_text="Every dispute")
    for table in (due, every):
        row = table.locator("tbody tr").first
        within_screen(page, row.locator("td.num"), row.locator("td[data-label=Status]"))
    shot(page, "disputes-list", width)

    due.get_by_role("link", name=dispute.public_id).click()
    expect(page.get_by_role("heading", name=re.compile("Dispute dsp_"))).to_be_visible()
    page.get_by_label(re.compile("Your evidence")).fill("Delivered on 3 December, signed.")
    shot(page, "disputes-detail", width)
    page.get_by_role("button", name="Review evidence…").click()
    expect(page.get_by_role("heading", name=re.compile("Submit this evidence"))).to_be_visible()
    shot(page, "disputes-confirm", width)
    page.get_by_role("button", name="Yes, submit the evidence").click()

    expect(page.get_by_text(re.compile(r"Evidence submitted for dispute dsp_"))).to_be_visible()
    expect(page.locator(".badge-under_review").first).to_have_text("Under review")
    expect(page.get_by_role("status").filter(has_text="need")).to_have_count(0)
    shot(page, "disputes-submitted", width)


def test_a_merchant_accepts_a_dispute_and_sees_it_lost_everywhere(
    app, make_context, live_server, make_merchant, paid_payment, stripe_delivers
):
    """The other answer: accept (not contest) it, after a confirmation that says what it costs;
    the dispute is closed as lost on its page, in the disputes list, on the payment's page and
    in the transactions list."""
    merchant, _key = make_merchant("Accepting Shop")
    make_user(app, merchant.id, "owner@accepting.example")
    payment = paid_payment(merchant.id, amount=4500, merchant_reference="order-accept")
    opened = open_dispute(app, stripe_delivers, payment.public_id, reason="fraudulent")
    dispute = recorded_dispute(app, opened["id"])
    page = make_context().new_page()
    log_in(page, live_server.url, "owner@accepting.example")

    page.goto(f"{live_server.url}/dashboard/disputes/{dispute.public_id}")
    page.get_by_role("link", name="Accept the dispute…").click()
    confirm = page.get_by_role("heading", name=f"Accept dispute {dispute.public_id}?")
    expect(confirm).to_be_visible()
    expect(page.get_by_text("This cannot be undone.")).to_be_visible()
    shoot(page, "disputes-accept-confirm")
    page.get_by_role("button", name="Yes, accept the dispute").click()

    expect(page.get_by_text(f"Dispute {dispute.public_id} accepted: Lost.")).to_be_visible()
    expect(page.locator(".page-head .badge-lost")).to_have_text("Lost")
    expect(page.get_by_text("Answer this dispute")).to_have_count(0)
    assert recorded_dispute(app, opened["id"]).status == "lost"
    page.get_by_role("link", name="Disputes", exact=True).first.click()
    every = page.locator("table").filter(has_text="Every dispute")
    row = every.locator("tbody tr").filter(has_text=dispute.public_id)
    expect(row.locator(".badge-lost")).to_have_text("Lost")
    expect(page.get_by_role("status").filter(has_text="need")).to_have_count(0)
    shoot(page, "disputes-accepted-list")
    row.get_by_role("link", name=dispute.public_id).click()
    page.get_by_role("link", name="order-accept").click()
    disputes = page.get_by_role("region", name="Disputes", exact=True)
    expect(disputes.locator(".badge-lost")).to_have_text("Lost")
    page.goto(f"{live_server.url}/dashboard/payments?q={payment.public_id}")
    expect(page.locator("tr.tx-row .badge-dispute-lost")).to_have_text("Dispute lost")


@pytest.mark.parametrize(("outcome", "label", "shop_label"), [
    ("won", "Won", "Dispute won"),
    ("lost", "Lost", "Dispute lost"),
])  # fmt: skip
def test_a_shop_order_disputed_answered_and_decided_through_the_emulator(
    page, make_context, app, live_server, shop, emulator, outcome, label, shop_label
):
    """A shopper pays in the demo shop; the cardholder's bank disputes it (the emulator's
    control route); the merchant sees it (banner, disputes page, API), submits evidence; the
    bank decides; the dashboard shows it decided and the shop's order shows it from PayBridge's
    dispute.created / dispute.closed notifications."""
    shopper = page
    order_id = buy(
        shopper, app, shop.url, emulator, f"{outcome}@disputes.example", ["Alpine Sunrise"]
    )
    pay_id = get_row(app, Payment, merchant_reference=f"order-{order_id}").public_id
    owner = f"owner-{outcome}@disputes.example"
    make_user(app, shop.merchant_id, owner)

    opened = open_dispute(app, emulator, pay_id, reason="product_not_received")
    dispute = recorded_dispute(app, opened["id"])

    # The banner on the first page, the disputes page, the dispute.
    dashboard = make_context().new_page()
    log_in(dashboard, live_server.url, owner)
    banner = dashboard.get_by_role("status").filter(has_text="1 dispute needs your response.")
    expect(banner).to_be_visible()
    banner.get_by_role("link", name="Respond to disputes").click()
    due = dashboard.locator("table").filter(has_text="Needing your response")
    expect(due).to_contain_text(dispute.public_id)
    expect(due).to_contain_text("29.00")
    shoot(dashboard, f"disputes-{outcome}-page-open")
    due.get_by_role("link", name=dispute.public_id).click()
    expect(dashboard.get_by_role("heading", name=re.compile("Dispute dsp_"))).to_be_visible()
    shoot(dashboard, f"disputes-{outcome}-dispute-open")

    # Evidence, reviewed then submitted.
    dashboard.get_by_label(re.compile("Your evidence")).fill("Delivered on 3 December, signed.")
    dashboard.get_by_role("button", name="Review evidence…").click()
    dashboard.get_by_role("button", name="Yes, submit the evidence").click()
    expect(
        dashboard.get_by_text(re.compile(r"Evidence submitted for dispute dsp_"))
    ).to_be_visible()
    expect(dashboard.locator(".page-head .badge-under_review")).to_have_text("Under review")

    # The bank decides (the emulator's control route); PayBridge hears it by webhook.
    emulator.control("POST", f"disputes/{opened['id']}/close", {"outcome": outcome})
    recorded_dispute(app, opened["id"], until=lambda d: d.status == outcome, what=outcome)
    dashboard.reload()
    expect(dashboard.locator(f".page-head .badge-{outcome}")).to_have_text(label)
    expect(dashboard.get_by_text("Answer this dispute")).to_have_count(0)
    shoot(dashboard, f"disputes-{outcome}-dispute-closed")
    dashboard.get_by_role("link", name="Disputes", exact=True).first.click()
    every = dashboard.locator("table").filter(has_text="Every dispute")
    expect(every.locator("tbody tr").filter(has_text=dispute.public_id)).to_contain_text(label)
    expect(dashboard.get_by_role("status").filter(has_text="need")).to_have_count(0)
    shoot(dashboard, f"disputes-{outcome}-page-closed")
    # The shopper's customer page lists it, a card on a phone.
    dashboard.goto(f"{live_server.url}/dashboard/customers/{outcome}@disputes.example")
    disputes = dashboard.get_by_role("region", name="Disputes", exact=True)
    disputed = disputes.locator("tbody tr").filter(has_text=dispute.public_id)
    expect(disputed).to_contain_text(label)
    expect(disputed).to_contain_text("29.00")
    dashboard.set_viewport_size({"width": 390, "height": 900})
    within_screen(dashboard, disputed.locator("td.num"), disputed.locator("td[data-label=Status]"))
    shoot(dashboard, f"disputes-{outcome}-customer")
    # The transactions list marks the payment with the outcome and its filter finds it.
    dashboard.goto(f"{live_server.url}/dashboard/payments?dispute_state={outcome}")
    row = dashboard.locator("tr.tx-row").filter(has_text=pay_id)
    expect(row.locator(f".badge-dispute-{outcome}")).to_have_text(shop_label)
    expect(dashboard.locator("tr.tx-row")).to_have_count(1)
    shoot(dashboard, f"disputes-{outcome}-transactions")

    # The API, with the shop's own key, over HTTP.
    answer = requests.get(
        f"{live_server.url}/api/v1/disputes/{dispute.public_id}",
        headers={"Authorization": f"Bearer {shop.api_key}"},
        timeout=10,
    ).json()
    assert (answer["status"], answer["payment_id"], answer["evidence_text"]) == (
        outcome, pay_id, "Delivered on 3 December, signed.",
    )  # fmt: skip

    # The shop hears of it from PayBridge's signed notifications, and shows it on the order.
    def order_shows_the_decision() -> bool:
        deliver_due_notifications(app)
        shopper.goto(f"{shop.url}/orders/{order_id}")  # the order page does not refresh itself
        status = shopper.get_by_test_id("dispute-status")
        return status.count() > 0 and status.get_attribute("data-status") == outcome

    wait_until(order_shows_the_decision, timeout=30, interval=0.5, what="the decision on the order")
    expect(shopper.get_by_test_id("dispute-status")).to_have_text(shop_label)
    expect(shopper.get_by_test_id("dispute-row")).to_contain_text(dispute.public_id)
    expect(shopper.get_by_test_id("dispute-row")).to_contain_text("29.00")
    received = [kind for kind, result in shop.received() if result == "applied"]
    assert received.count("dispute.created") == 1 and received.count("dispute.closed") == 1
    shoot(shopper, f"disputes-{outcome}-shop-order")
