"""A shopper subscribes to the shop's plan in Chromium, pays on the hosted page, and sees each
charge of the subscription on the order page as the emulator's clock bills the next month (the
shop learns of it from PayBridge's notification); the merchant sees the same charges in the
dashboard."""

from __future__ import annotations

import re
from datetime import UTC

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.extensions import db
from app.models import Payment, Subscription
from tests.e2e.shop_flow import deliver_while_waiting_for, pay_with_card, sign_up
from tests.support.delivery import deliver_due_notifications
from tests.support.payflow import SUCCESS_CARD
from tests.support.waiting import wait_until


@pytest.fixture
def clock_reset(emulator):
    """This test moves the emulator's clock a month ahead: put it back for the next tests."""
    yield emulator
    emulator.control("POST", "reset")


def _subscription_of_order(app, order_id: int):
    """PayBridge's side of the shop's order: (subscription id, status, period end, renewals)."""
    with app.app_context():
        sub = db.session.execute(
            select(Subscription)
            .join(Payment, Payment.id == Subscription.first_payment_id)
            .where(Payment.merchant_reference == f"order-{order_id}")
        ).scalar_one_or_none()
        result = None
        if sub is not None:
            charges = db.session.execute(
                select(Payment.status).where(Payment.parent_payment_id == sub.first_payment_id)
            ).scalars()
            result = (sub.public_id, sub.status, sub.current_period_end, list(charges))
        db.session.remove()
        return result


def test_a_shopper_subscribes_and_sees_each_monthly_charge(
    page, make_context, app, live_server, shop, shop_url, clock_reset
):
    emulator = clock_reset
    sign_up(page, shop_url, "grace@example.com")
    page.goto(shop_url + "/")
    page.get_by_role("link", name="Subscribe to Print of the Month Club").click()
    expect(page.get_by_test_id("plan-price")).to_have_text("€19.00")
    page.get_by_role("button", name="Subscribe and pay").click()
    expect(page).to_have_url(re.compile(re.escape(emulator.url) + r"/c/pay/cs_"))
    expect(page.get_by_text("€19.00").first).to_be_visible()
    pay_with_card(page, SUCCESS_CARD)

    expect(page).to_have_url(re.compile(re.escape(shop_url) + r"/orders/\d+/success"))
    order_id = int(re.search(r"/orders/(\d+)/", page.url).group(1))
    deliver_while_waiting_for(page, app, "Thank you! Your order is paid.")

    page.goto(f"{shop_url}/orders/{order_id}")
    expect(page.get_by_test_id("subscription-status")).to_have_text("active")
    expect(page.locator("table.charges tbody tr")).to_have_count(1)

    # A month later (on the emulator's clock) the card is charged again.
    public_id, _, period_end, _ = _subscription_of_order(app, order_id)
    now = emulator.control("GET", "clock")["now"]
    end = int(period_end.replace(tzinfo=UTC).timestamp())
    emulator.control("POST", "clock/advance", {"seconds": end - now + 1})
    wait_until(
        lambda: _subscription_of_order(app, order_id)[3] == ["SUCCESS"],
        what="the renewal at PayBridge",
        timeout=20.0,
        interval=0.1,
        details=lambda: f"renewals: {_subscription_of_order(app, order_id)[3]}",
    )
    wait_until(  # PayBridge tells the shop of the renewal: its own payment, signed notification
        lambda: deliver_due_notifications(app) or shop.order(order_id).renewals,
        what="the renewal's notification at the shop",
        timeout=20.0,
    )

    page.reload()
    rows = page.locator("table.charges tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("€19.00")
    expect(rows.nth(1)).to_contain_text("paid")
    expect(page.get_by_test_id("subscription-status")).to_have_text("active")

    # The shopper cancels: no more charges after the period already paid for.
    page.get_by_role("button", name="Cancel subscription").click()
    expect(page.get_by_text("Your subscription ends at the end of the period")).to_be_visible()
    expect(page.get_by_test_id("subscription-status")).to_contain_text("ends at the end")
    expect(page.get_by_role("button", name="Cancel subscription")).to_have_count(0)

    # The merchant sees the subscription and both charges in the dashboard.
    created = app.test_cli_runner().invoke(  # as scripts/demo.sh creates the demo's login
        args=["users", "create", "merchant@example.com", "--merchant-id", str(shop.merchant_id)],
        env={"PAYBRIDGE_USER_PASSWORD": "demo-password"},
    )
    assert created.exit_code == 0, created.output
    merchant = make_context().new_page()
    merchant.goto(live_server.url + "/dashboard/login")
    merchant.get_by_label("Email").fill("merchant@example.com")
    merchant.get_by_label("Password").fill("demo-password")
    merchant.get_by_role("button", name="Log in").click()
    merchant.get_by_role("link", name="Subscriptions").click()
    merchant.get_by_role("link", name=public_id).click()
    table = merchant.locator("table").last
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table).to_contain_text(f"order-{order_id}-r1")
    expect(table.locator("tbody tr").nth(1)).to_contain_text("SUCCESS")
