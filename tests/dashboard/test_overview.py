"""The overview against MariaDB: gross, refunded, disputed and net volume per currency beside
the previous period, conversion, days in the merchant's time zone, the range picker's errors,
and the time zone setting."""

from __future__ import annotations

import html as htmllib
import re
from datetime import datetime, timedelta
from uuid import uuid4

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Dispute, Merchant, PaymentAttempt, utcnow
from tests.dashboard.test_modes import switch
from tests.support.factories import add_payment, add_refund_rows
from tests.support.pages import token_for

# Every page read from the payments and from the rollup (tests/dashboard/conftest.py).
pytestmark = pytest.mark.usefixtures("overview_source")

# A fixed period of the past: 1–7 November 2026 in Paris (CET, UTC+1); before it, 25–31 Oct
# (the 25th is 25 hours long: the clocks went back).
CUSTOM = "/dashboard/?range=custom&from=2026-11-01&to=2026-11-07"


def paris(day: int, hour: int, month: int = 11) -> datetime:
    """Naive UTC of a Paris wall time in November 2026, or October after the 25th (CET)."""
    return datetime(2026, month, day, hour) - timedelta(hours=1)


def add_dispute(
    payment,
    *,
    amount: int,
    created_at: datetime,
    status: str = "needs_response",
    withdrawn_at: datetime | None = None,
    reinstated_at: datetime | None = None,
):
    db.session.add(
        Dispute(
            payment_id=payment.id,
            merchant_id=payment.merchant_id,
            livemode=payment.livemode,
            psp_dispute_id=f"dp_{uuid4().hex}",
            amount=amount,
            currency=payment.currency,
            reason="fraudulent",
            status=status,
            created_at=created_at,
            funds_withdrawn_at=withdrawn_at,
            funds_reinstated_at=reinstated_at,
        )
    )


def set_zone(app, merchant_id: int, name: str) -> None:
    with app.app_context():
        db.session.get(Merchant, merchant_id).time_zone = name
        db.session.commit()


def figures(page: str, currency: str) -> dict[str, tuple[str, str]]:
    """{label: (value, comparison)} of one currency's figures, as text."""
    match = re.search(
        rf'<div class="currency-figures" role="group" aria-label="{currency}">'
        r"(.*?)</div>\s*</div>\s*</div>",
        page,
        re.S,
    )
    assert match, f"no {currency} figures"
    found = {}
    for label, value, compare in re.findall(
        r'<div class="label">([^<]+)</div>\s*<div class="value">(.*?)</div>\s*'
        r'<div class="compare">(.*?)</div>',
        match.group(0) + "</div>",
        re.S,
    ):
        found[label] = (_text(value), _text(compare))
    return found


def payment_figures(page: str) -> dict[str, str]:
    section = page.split('id="rates-heading"')[1].split("</section>")[0]
    pairs = re.findall(
        r'<div class="label">([^<]+)</div><div class="value">(.*?)</div>', section, re.S
    )
    return {label: _text(value) for label, value in pairs}


def _text(fragment: str) -> str:
    text = htmllib.unescape(re.sub(r"<[^>]+>", "", fragment)).replace("\xa0", " ")
    return " ".join(text.split())


@pytest.fixture
def shop_in_paris(app, tenants):
    """Merchant A in Paris with payments, refunds and disputes in EUR, USD and JPY, in the
    period and the one before; merchant B's and A's live ones around them."""
    set_zone(app, tenants.a_id, "Europe/Paris")
    with app.app_context():
        a = tenants.a_id
        # 1–7 Nov: EUR 100 + 50 paid, 30 failed, one open; USD 20 paid; JPY 5000 paid.
        eur_paid = add_payment(a, amount=10000, created_at=paris(1, 0, 11) + timedelta(minutes=5))
        add_payment(a, amount=5000, created_at=paris(7, 23))
        add_payment(a, status="FAILED", amount=3000, created_at=paris(3, 12))
        add_payment(a, status="INITIATED", amount=999, created_at=paris(4, 12))
        add_payment(a, amount=2000, currency="USD", created_at=paris(5, 12))
        jpy = add_payment(a, amount=5000, currency="JPY", created_at=paris(6, 12))
        # Outside by minutes in Paris, inside in UTC: 31 Oct 23:30 Paris is 22:30 UTC...
        add_payment(a, amount=7000, created_at=paris(31, 23, 10) + timedelta(minutes=30))
        # ... and 8 Nov 00:30 Paris is 7 Nov 23:30 UTC: the next period, not this one.
        add_payment(a, amount=111, created_at=paris(8, 0) + timedelta(minutes=30))
        # 25–31 Oct: EUR 80 paid (plus the 70 above), 1 failed.
        add_payment(a, amount=8000, created_at=paris(25, 1, 10))  # 02:00 CEST
        add_payment(a, status="FAILED", amount=100, created_at=paris(28, 9, 10))
        # Refunds: 25 EUR made in the period (of an older payment), 10 EUR failed (not counted),
        # 5 EUR in the previous period.
        add_refund_rows(a, amount=2500, start=paris(2, 9), currency="EUR")
        add_refund_rows(a, amount=1000, start=paris(2, 10), status="failed", currency="EUR")
        add_refund_rows(a, amount=500, start=paris(27, 9, 10))
        # Chargebacks withdrawn in the period: 40 EUR (lost later: still counted), JPY 1000.
        at = paris(5, 8)
        add_dispute(eur_paid, amount=4000, created_at=at, status="lost", withdrawn_at=at)
        add_dispute(jpy, amount=1000, created_at=paris(6, 18), withdrawn_at=paris(6, 18))
        # An inquiry moves no money: not disputed.
        add_dispute(eur_paid, amount=9900, created_at=paris(4, 8), status="warning_needs_response")
        # Withdrawn before the period, won in it: 6 EUR back to the net.
        add_dispute(
            eur_paid,
            amount=600,
            created_at=paris(26, 8, 10),
            status="won",
            withdrawn_at=paris(26, 8, 10),
            reinstated_at=paris(3, 8),
        )
        # Not A's test data: B's, and A's live payment.
        add_payment(tenants.b_id, amount=99900, created_at=paris(3, 12))
        add_payment(a, amount=88800, livemode=True, created_at=paris(3, 12))
        db.session.commit()
    return tenants


def test_volume_per_currency_beside_the_previous_period(client_a, shop_in_paris):
    assert switch(client_a, "test").status_code == 302  # A is live: its test data, please
    response = client_a.get(CUSTOM)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "1 Nov 2026 – 7 Nov 2026 · times in Europe/Paris" in _text(page)
    eur = figures(page, "EUR")
    assert eur["Gross volume"] == ("150.00 EUR", "no change vs 150.00")  # 80 + 70 before
    assert eur["Refunded"] == ("25.00 EUR", "▲ +400.0 % vs 5.00")
    assert eur["Disputed"] == ("40.00 EUR", "▲ +566.7 % vs 6.00")
    assert eur["Reinstated"] == ("6.00 EUR", "new vs 0.00")
    assert eur["Net volume"] == ("91.00 EUR", "▼ −34.5 % vs 139.00")
    usd = figures(page, "USD")
    assert usd["Gross volume"] == ("20.00 USD", "new vs 0.00")
    assert usd["Net volume"][0] == "20.00 USD"
    jpy = figures(page, "JPY")
    assert jpy["Gross volume"][0] == "5000 JPY" and jpy["Disputed"][0] == "1000 JPY"
    assert jpy["Net volume"][0] == "4000 JPY"
    # Currencies in order of volume; B's and live amounts nowhere.
    assert page.index('aria-label="EUR"') < page.index('aria-label="USD"')
    assert "999.00" not in page and "888.00" not in page
    assert switch(client_a, "live").status_code == 302
    live = client_a.get(CUSTOM).get_data(as_text=True)
    assert figures(live, "EUR")["Gross volume"][0] == "888.00 EUR"
    assert 'aria-label="USD"' not in live
    counts = payment_figures(page)
    assert counts["Payments started"] == "6"  # 4 EUR + USD + JPY
    assert counts["Paid"] == "4" and counts["Failed"] == "1"
    assert counts["Conversion rate"] == "66.7 %"
    # Good news green, bad news red: more refunds is bad.
    assert '<span class="delta bad"><span aria-hidden="true">▲</span> +400.0' in page


def test_days_are_the_merchants_days(client_a, shop_in_paris):
    switch(client_a, "test")
    page = client_a.get(CUSTOM).get_data(as_text=True)
    rows = dict(
        re.findall(r'<tr><th scope="row">(\d{4}-\d\d-\d\d)</th><td class="num">(\d+)</td>', page)
    )
    assert list(rows) == [f"2026-11-0{d}" for d in range(1, 8)]
    # 00:05 Paris on the 1st is 23:05 UTC on 31 Oct: counted on the 1st; 23:00 Paris on the
    # 7th is 22:00 UTC: on the 7th.
    assert rows["2026-11-01"] == "1" and rows["2026-11-07"] == "1"
    assert sum(int(v) for v in rows.values()) == 6


def test_in_utc_the_same_payments_fall_on_other_days(app, client_a, shop_in_paris):
    switch(client_a, "test")
    set_zone(app, shop_in_paris.a_id, "UTC")
    page = client_a.get(CUSTOM).get_data(as_text=True)
    counts = payment_figures(page)
    # 00:05 Paris on the 1st is now 31 Oct; 8 Nov 00:30 Paris (7 Nov 23:30 UTC) is in.
    assert counts["Payments started"] == "6"
    assert figures(page, "EUR")["Gross volume"][0] == "51.11 EUR"  # 50 + 1.11
    assert "times in UTC" in _text(page)


@pytest.mark.parametrize(
    "query, message",
    [
        ("range=custom&from=2026-11-07&to=2026-11-01", "is after the end date"),
        ("range=custom&from=2025-01-01&to=2026-11-01", "choose at most 366 days"),
        ("range=custom&from=2026-02-30&to=2026-11-01", "is not a date: use YYYY-MM-DD"),
        ("range=fortnight", "Unknown range"),
    ],
)
def test_a_bad_range_says_why_and_shows_the_default_period(client_a, tenants, query, message):
    response = client_a.get("/dashboard/?" + query)
    assert response.status_code == 400
    page = _text(response.get_data(as_text=True))
    assert message in page
    assert "Showing last 30 days instead." in page
    today = utcnow().date()
    assert f"{(today - timedelta(days=29)).day} " in page  # the default period's label


def test_the_range_stays_in_the_form(client_a, tenants):
    page = client_a.get(CUSTOM).get_data(as_text=True)
    assert '<option value="custom" selected>' in page
    assert 'name="from" type="date" value="2026-11-01"' in page
    assert 'name="to" type="date" value="2026-11-07"' in page
    preset = client_a.get("/dashboard/?range=last_7_days").get_data(as_text=True)
    assert '<option value="last_7_days" selected>' in preset


def test_operator_sees_one_merchants_figures_in_its_zone(client_op, shop_in_paris):
    switch(client_op, "test")
    page = client_op.get(CUSTOM + f"&merchant_id={shop_in_paris.a_id}").get_data(as_text=True)
    assert figures(page, "EUR")["Gross volume"][0] == "150.00 EUR"
    assert "times in Europe/Paris" in _text(page)
    # One form: another merchant keeps the range.
    form = page.split('aria-label="Date range"')[1].split("</form>")[0]
    assert f'<option value="{shop_in_paris.a_id}" selected>' in form
    assert 'name="from" type="date" value="2026-11-01"' in form
    everyone = client_op.get(CUSTOM).get_data(as_text=True)
    assert "times in UTC" in _text(everyone)
    assert "999.00 EUR" in _text(everyone)  # B's payment too, in UTC days


def test_time_zone_setting_is_checked_saved_audited_and_shown(app, client_a, tenants):
    token = token_for(client_a, "/dashboard/settings")
    bad = client_a.post(
        "/dashboard/settings/time-zone", data={"time_zone": "Mars/Olympus", "csrf_token": token}
    )
    assert bad.status_code == 400
    assert "&#39;Mars/Olympus&#39; is not a time zone" in bad.get_data(as_text=True)
    done = client_a.post(
        "/dashboard/settings/time-zone",
        data={"time_zone": "America/New_York", "csrf_token": token},
    )
    assert done.status_code == 302
    with app.app_context():
        assert db.session.get(Merchant, tenants.a_id).time_zone == "America/New_York"
        row = db.session.scalar(select(AuditLog).where(AuditLog.action == "time_zone_change"))
        assert row.detail["from"] == "UTC" and row.detail["to"] == "America/New_York"
        # Times on every page follow: a stuck payment's last change, in New York.
        add_payment(
            tenants.a_id,
            status="PENDING",
            created_at=datetime(2026, 12, 1, 15, 30),
            updated_at=datetime(2026, 12, 1, 15, 30),
        )
        db.session.commit()
    page = client_a.get("/dashboard/").get_data(as_text=True)
    assert '<time datetime="2026-12-01T15:30:00Z">2026-12-01 10:30:00 EST</time>' in page
    settings = client_a.get("/dashboard/settings").get_data(as_text=True)
    assert 'value="America/New_York"' in settings


def attempt(payment, outcome: str, **fields) -> None:
    db.session.add(
        PaymentAttempt(
            payment_id=payment.id,
            outcome=outcome,
            attempted_at=payment.created_at,
            psp_event_id=f"evt_{uuid4().hex}",
            **fields,
        )
    )


def test_rates_failure_reasons_and_payment_methods(client_a, app, tenants):
    """Conversion (paid ÷ started) and authorization (accepted attempts ÷ attempts) apart: a
    shopper who left without trying lowers the first only; failures by reason and paid
    payments by method (the card's brand for cards), each chart with its table."""
    with app.app_context():
        a = tenants.a_id

        def pay(method_type, brand=None, amount=1000, currency="EUR"):
            p = add_payment(a, amount=amount, currency=currency, created_at=paris(3, 12))
            p.method_type, p.card_brand = method_type, brand
            attempt(p, "succeeded", method_type=method_type, card_brand=brand)
            return p

        pay("card", "visa"), pay("card", "visa", 2000), pay("card", "mastercard", 500, "USD")
        pay("sepa_debit"), pay("ideal")
        declined = add_payment(a, status="FAILED", created_at=paris(4, 12))
        declined.failure_reason = "declined"
        attempt(declined, "failed", decline_code="insufficient_funds")
        retried = pay("card", "visa", 3000)  # declined first, then paid: still one attempted
        attempt(retried, "failed", decline_code="card_declined")
        for reason in ("canceled_by_shopper", "canceled_by_shopper", "expired"):
            add_payment(a, status="FAILED", created_at=paris(5, 12)).failure_reason = reason
        add_payment(a, status="FAILED", created_at=paris(6, 12))  # from before reasons: NULL
        add_payment(a, status="INITIATED", created_at=paris(6, 13))  # never tried
        old = add_payment(a, status="FAILED", created_at=paris(28, 12, 10))
        old.failure_reason = "declined"
        attempt(old, "failed")
        db.session.commit()
    page = client_a.get("/dashboard/?range=custom&from=2026-11-01&to=2026-11-07")
    html = page.get_data(as_text=True)
    counts = payment_figures(html)
    assert counts["Payments started"] == "12" and counts["Paid"] == "6"
    assert counts["Conversion rate"] == "50.0 %"  # 6 of 12
    # Per attempt, as Stripe counts it: 6 accepted of 8 tries (the retried payment's decline
    # and the declined one's are tries too).
    assert counts["Authorization rate"] == "75.0 %"
    assert "before: 0.0&nbsp;%" in html.split("Authorization rate")[2]  # the old one: 0 of 1
    # A shopper's cancel is their decision, not a failure: counted apart, neutral.
    assert counts["Failed"] == "3" and counts["Canceled"] == "2"

    reasons = _table(html, "Failed payments by reason")
    assert reasons == [
        ["Declined", "1", "33 %", "1"],
        ["Expired", "1", "33 %", "0"],
        ["Not recorded", "1", "33 %", "0"],
    ]
    per_day = {row[0]: row[1:5] for row in _table(html, "Payments per day (UTC)")}
    assert per_day["2026-11-05"] == ["3", "0", "1", "2"]  # started, paid, failed, canceled
    methods = _table(html, "Paid payments by payment method")
    assert methods == [
        ["Visa", "3", "60.00 EUR"],
        ["iDEAL", "1", "10.00 EUR"],
        ["Mastercard", "1", "5.00 USD"],
        ["SEPA Direct Debit", "1", "10.00 EUR"],
    ]
    svg = _text(html.split('id="reasons-heading"')[1].split("</svg>")[0])
    assert "3 failed payments: Declined 1 (33%); Expired 1 (33%)" in svg
    volume = _text(html.split('id="per-day-heading"')[1].split("</svg>")[0])
    assert "3 failed, 2 canceled" in volume
    assert 'role="img"' in html.split('id="methods-heading"')[1]


def _table(page: str, caption: str) -> list[list[str]]:
    body = page.split(f"<caption>{caption}</caption>")[1].split("</tbody>")[0]
    body = body.split("<tbody>")[1]
    return [
        [_text(cell) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def test_a_25_hour_day_keeps_its_payments_and_a_year_fits(app, client_a, tenants):
    """Paris's 25 October 2026 runs from 22:00 UTC on the 24th to 23:00 UTC on the 25th."""
    set_zone(app, tenants.a_id, "Europe/Paris")
    with app.app_context():
        for at in (
            datetime(2026, 10, 24, 21, 59),  # 23:59 CEST on the 24th
            datetime(2026, 10, 24, 22, 0),  # 00:00 CEST on the 25th
            datetime(2026, 10, 25, 0, 30),  # 02:30 CEST
            datetime(2026, 10, 25, 1, 30),  # 02:30 CET, the hour repeated
            datetime(2026, 10, 25, 22, 59),  # 23:59 CET
            datetime(2026, 10, 25, 23, 0),  # 00:00 CET on the 26th
        ):
            add_payment(tenants.a_id, created_at=at)
        db.session.commit()
    page = client_a.get("/dashboard/?range=custom&from=2026-10-24&to=2026-10-26")
    rows = dict(
        re.findall(
            r'<tr><th scope="row">(\d{4}-\d\d-\d\d)</th><td class="num">(\d+)</td>',
            page.get_data(as_text=True),
        )
    )
    assert rows == {"2026-10-24": "1", "2026-10-25": "4", "2026-10-26": "1"}

    year = client_a.get("/dashboard/?range=custom&from=2025-12-01&to=2026-11-30")
    assert year.status_code == 200
    html = year.get_data(as_text=True)
    assert len(re.findall(r'<tr><th scope="row">\d{4}-\d\d-\d\d</th>', html)) == 365
    assert payment_figures(html)["Payments started"] == "6"
