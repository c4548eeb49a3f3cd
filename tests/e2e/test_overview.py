"""A merchant in Chromium sets its time zone, then reads its overview over a custom range:
gross, refunded, disputed and net volume per currency beside the previous period, conversion,
the charts and their tables; a range the other way round is refused with a message. On a
desktop and a phone; screenshots of both widths are kept under test-artifacts/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from app.extensions import db
from tests.dashboard.test_overview import add_dispute, attempt, paris
from tests.e2e.test_dashboard_modes import log_in
from tests.support.browser import shot
from tests.support.factories import add_payment, add_refund_rows, make_user


def a_month_of_sales(app, merchant_id: int) -> None:
    """November 2026 in Paris: EUR and USD sales most days, a few failures, a refund and a
    dispute; less in October, the period before."""
    methods = [("card", "visa"), ("card", "mastercard"), ("card", "visa"), ("sepa_debit", None)]
    reasons = ["declined", "canceled_by_shopper", "declined", "expired"]
    with app.app_context():
        for day in range(1, 15):
            for n in range(1 + day % 3):
                p = add_payment(merchant_id, amount=2500 + 700 * n, created_at=paris(day, 9 + n))
                p.method_type, p.card_brand = methods[(day + n) % len(methods)]
            if day % 4 == 0:
                p = add_payment(
                    merchant_id, status="FAILED", amount=4000, created_at=paris(day, 15)
                )
                p.failure_reason = reasons[day % 3]
            if day % 5 == 0:
                p = add_payment(
                    merchant_id, amount=12000, currency="USD", created_at=paris(day, 18)
                )
                p.method_type = "ideal"
        for day in range(18, 32):
            add_payment(merchant_id, amount=2500, created_at=paris(day, 10, month=10))
        add_payment(merchant_id, status="INITIATED", amount=1500, created_at=paris(9, 20))
        paid = add_payment(merchant_id, amount=8900, created_at=paris(3, 11))
        add_refund_rows(merchant_id, amount=1500, start=paris(6, 14))
        add_dispute(paid, amount=8900, created_at=paris(10, 16), withdrawn_at=paris(10, 16))
        db.session.flush()
        attempt(paid, "succeeded")  # the authorization rate counts attempts
        db.session.commit()


@pytest.mark.parametrize("width", [1280, 390])
def test_a_merchant_reads_its_overview_over_a_custom_range(
    app, make_context, live_server, make_merchant, width
):
    merchant, _key = make_merchant(f"Overview Shop {width}")
    make_user(app, merchant.id, f"owner{width}@overview.example")
    a_month_of_sales(app, merchant.id)
    page = make_context(viewport={"width": width, "height": 900}).new_page()
    log_in(page, live_server.url, f"owner{width}@overview.example")

    # Days start at midnight in Paris from now on.
    page.goto(live_server.url + "/dashboard/settings")
    page.get_by_role("combobox", name="Time zone").fill("Europe/Paris")
    page.get_by_role("button", name="Save time zone").click()
    expect(page.get_by_text("Times are shown in Europe/Paris from now on.")).to_be_visible()
    expect(page.get_by_role("combobox", name="Time zone")).to_have_value("Europe/Paris")
    shot(page, "settings-time-zone", width)

    page.goto(live_server.url + "/dashboard/")
    picker = page.get_by_role("form", name="Date range")
    picker.get_by_label("Date range").select_option("custom")
    picker.get_by_label("From").fill("2026-11-01")
    picker.get_by_label("To").fill("2026-11-14")
    picker.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"range=custom&from=2026-11-01&to=2026-11-14"))
    shown = "1 Nov 2026 – 14 Nov 2026 · times in Europe/Paris"
    expect(page.locator("#period-shown")).to_have_text(shown)

    eur = page.get_by_role("group", name="EUR")
    gross = eur.locator(".figure").filter(has_text="Gross volume")
    expect(gross.locator(".value")).to_have_text(re.compile(r"\d+\.\d\d EUR"))
    expect(eur.locator(".figure").filter(has_text="Refunded").locator(".value")).to_have_text(
        "15.00 EUR"
    )
    expect(eur.locator(".figure").filter(has_text="Disputed").locator(".value")).to_have_text(
        "89.00 EUR"
    )
    expect(eur.locator(".figure").filter(has_text="Disputed")).to_contain_text(
        "1 chargeback withdrawn"
    )
    usd = page.get_by_role("group", name="USD")
    expect(usd.locator(".figure").filter(has_text="Gross volume").locator(".value")).to_have_text(
        "240.00 USD"
    )
    expect(usd.locator(".figure").filter(has_text="Gross volume")).to_contain_text("new")
    previous = "Compared with the previous 14 days (18 Oct 2026 – 31 Oct 2026)"
    expect(page.get_by_text(previous)).to_be_visible()
    chart = page.get_by_role("img", name="Payments per day")
    expect(chart).to_be_visible()
    # Rates apart, and what failed and how shoppers paid: each chart with its table.
    # 36 payments started 1–14 Nov (Paris), 32 paid (the 3 failed and the 1 still open not);
    # one try to pay recorded, accepted.
    rates = {"Payments started": "36", "Paid": "32"}
    for label, value in rates.items():
        title = page.locator(".label", has_text=re.compile(f"^{label}$"))
        expect(page.locator(".figure").filter(has=title).locator(".value")).to_have_text(value)
    conversion = page.locator(".figure").filter(has_text="Conversion rate").locator(".value")
    expect(conversion).to_have_text(re.compile(r"^88\.9\s%$"))
    authorization = page.locator(".figure").filter(has_text="Authorization rate")
    expect(authorization.locator(".value")).to_have_text(re.compile(r"^100\.0\s%$"))
    expect(page.get_by_role("img", name="Failed payments by reason")).to_be_visible()
    reasons = page.get_by_role("table", name="Failed payments by reason")
    expect(reasons.locator("tbody tr").first).to_contain_text("Declined")
    methods = page.get_by_role("table", name="Paid payments by payment method")
    expect(methods).to_contain_text("Visa")
    expect(methods).to_contain_text("SEPA Direct Debit")
    expect(methods).to_contain_text("240.00 USD")
    shot(page, "overview-custom-range", width)

    page.get_by_text("Show the numbers as a table").click()
    table = page.get_by_role("table", name="Payments per day (Europe/Paris)")
    expect(table.locator("tbody tr")).to_have_count(14)
    expect(table.locator("tbody tr").first).to_contain_text("2026-11-01")

    # The other way round: refused, said why, and the dates stay to be corrected.
    picker = page.get_by_role("form", name="Date range")
    picker.get_by_label("From").fill("2026-11-20")
    picker.get_by_role("button", name="Show").click()
    alert = page.get_by_role("alert").filter(has_text="is after the end date")
    expect(alert).to_contain_text("The start date 2026-11-20 is after the end date 2026-11-14.")
    expect(page.get_by_role("form", name="Date range").get_by_label("From")).to_have_value(
        "2026-11-20"
    )
    expect(page.get_by_role("form", name="Date range").get_by_label("From")).to_have_attribute(
        "aria-invalid", "true"
    )
    shot(page, "overview-range-error", width)
