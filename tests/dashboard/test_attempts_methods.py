"""The payment method, attempts and failure reasons on the dashboard: the transactions list's
filters and search, its CSV, and the payment page (a canceled payment reads "Canceled")."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta

import pytest

from app.extensions import db
from app.models import PaymentAttempt
from tests.support.factories import add_payment

NOW = datetime(2026, 11, 20, 12, 0, 0)
ROW_ID = re.compile(r'href="/dashboard/payments/(pay_[A-Za-z0-9]+)"')
VISA = {"type": "card", "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034,
        "funding": "credit", "country": "US", "wallet": "apple_pay",
        "three_d_secure": "authenticated", "mandate": None, "mandate_reference": None}  # fmt: skip
SEPA = {"type": "sepa_debit", "brand": None, "last4": "3000", "exp_month": None,
        "exp_year": None, "funding": None, "country": "DE", "wallet": None,
        "three_d_secure": None, "mandate": "mandate_1Abc",
        "mandate_reference": "P8LZ5Q0ZKXQ2NJHS"}  # fmt: skip


def ids_on_page(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return ROW_ID.findall(response.get_data(as_text=True))


@pytest.fixture
def dataset(app, tenants):
    with app.app_context():
        rows = {}
        for i, (ref, status, method, reason) in enumerate(
            [
                ("visa-paid", "SUCCESS", VISA, None),
                ("sepa-paid", "SUCCESS", SEPA, None),
                ("declined", "FAILED", None, "declined"),
                ("canceled", "FAILED", None, "canceled_by_shopper"),
                ("merchant", "FAILED", None, "canceled_by_merchant"),
                ("card-refill", "INITIATED", None, None),  # a reference starting "card"
            ]
        ):
            payment = add_payment(
                tenants.a_id, reference=ref, status=status, created_at=NOW - timedelta(hours=i)
            )
            if method:
                payment.payment_method = method
                payment.method_type = method["type"]
                payment.card_brand = method["brand"]
                payment.card_last4 = method["last4"]
            payment.failure_reason = reason
            rows[ref] = payment
        db.session.flush()
        paid = rows["visa-paid"]
        db.session.add_all(
            [
                PaymentAttempt(payment_id=paid.id, attempted_at=NOW - timedelta(minutes=5),
                               outcome="failed", method_type="card", card_brand="visa",
                               card_last4="9995", decline_code="insufficient_funds",
                               failure_code="card_declined",
                               failure_message="Your card has insufficient funds.",
                               psp_charge_id="ch_dash_1"),
                PaymentAttempt(payment_id=paid.id, attempted_at=NOW - timedelta(minutes=4),
                               outcome="succeeded", method_type="card", card_brand="visa",
                               card_last4="4242", psp_charge_id="ch_dash_2"),
            ]
        )  # fmt: skip
        # Merchant B's Visa ending 4242 never shows up for A.
        other = add_payment(tenants.b_id, reference="b-visa", status="SUCCESS")
        other.card_last4, other.card_brand, other.method_type = "4242", "visa", "card"
        db.session.commit()
        return {ref: p.public_id for ref, p in rows.items()}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("method_type=card", ["visa-paid"]),
        ("method_type=sepa_debit", ["sepa-paid"]),
        ("failure_reason=declined", ["declined"]),
        ("failure_reason=canceled_by_shopper", ["canceled"]),
        ("status=FAILED&failure_reason=canceled_by_merchant", ["merchant"]),
        ("q=4242", ["visa-paid"]),
        ("q=3000", ["sepa-paid"]),
        ("q=visa", ["visa-paid"]),
        ("q=VISA", ["visa-paid"]),
        ("q=sepa_debit", ["sepa-paid"]),
        ("q=SEPA", ["sepa-paid"]),  # the name's first word, in any case
        ("q=SEPA%20Direct%20Debit", ["sepa-paid"]),
        # A method word is one more branch: references starting with it are found too.
        ("q=card", ["visa-paid", "card-refill"]),
        ("q=424", []),  # last 4 is exact
    ],
)
def test_method_and_failure_reason_filter_and_search(client_a, dataset, query, expected):
    found = ids_on_page(client_a.get(f"/dashboard/payments?{query}"))
    assert set(found) == {dataset[ref] for ref in expected}


def test_an_unknown_filter_value_is_refused_not_ignored(client_a, dataset):
    page = client_a.get("/dashboard/payments?failure_reason=lost_in_space")
    html = page.get_data(as_text=True)
    assert page.status_code == 400 and "Not a valid choice" in html
    assert ROW_ID.findall(html) == []


def test_the_list_shows_canceled_neutral_and_the_method(client_a, dataset):
    html = client_a.get("/dashboard/payments").get_data(as_text=True)
    assert html.count('class="badge badge-canceled">Canceled<') == 2
    assert "Visa •••• 4242" in html and "SEPA Direct Debit •••• 3000" in html


def test_the_csv_carries_reason_and_method(client_a, dataset):
    body = client_a.get("/dashboard/payments/export.csv").get_data(as_text=True)
    rows = {r["merchant_reference"]: r for r in csv.DictReader(io.StringIO(body))}
    assert rows["visa-paid"]["method_type"] == "card"
    assert (rows["visa-paid"]["card_brand"], rows["visa-paid"]["card_last4"]) == ("visa", "4242")
    assert rows["canceled"]["failure_reason"] == "canceled_by_shopper"
    assert rows["sepa-paid"]["failure_reason"] == ""
    details = ("card_exp_month", "card_exp_year", "card_funding", "method_country", "wallet",
               "three_d_secure", "sepa_mandate")  # fmt: skip
    visa, sepa = ([rows[ref][c] for c in details] for ref in ("visa-paid", "sepa-paid"))
    assert visa == ["12", "2034", "credit", "US", "apple_pay", "authenticated", ""]
    assert sepa == ["", "", "", "DE", "", "", "mandate_1Abc"]
    assert [rows["declined"][c] for c in details] == [""] * 7  # no method recorded
    # Added after the others: the last column, so readers by position keep working.
    assert list(rows["sepa-paid"])[-2:] == ["dispute_state", "sepa_mandate_reference"]
    assert rows["sepa-paid"]["sepa_mandate_reference"] == "P8LZ5Q0ZKXQ2NJHS"
    assert rows["visa-paid"]["sepa_mandate_reference"] == ""


def test_the_payment_page_shows_attempts_and_method(client_a, dataset):
    html = client_a.get(f"/dashboard/payments/{dataset['visa-paid']}").get_data(as_text=True)
    attempts = html[html.index('id="attempts-heading"') :]
    assert attempts.index("insufficient_funds") < attempts.index("Succeeded")
    assert "Visa •••• 9995" in attempts and "Visa •••• 4242" in attempts
    assert "expires 12/2034" in html and "via Apple Pay" in html
    assert "3-D Secure: authenticated" in html

    canceled = client_a.get(f"/dashboard/payments/{dataset['canceled']}").get_data(as_text=True)
    assert 'badge-canceled">Canceled<' in canceled and "Canceled by the shopper" in canceled
    assert "No attempt to pay yet." in canceled
    sepa = client_a.get(f"/dashboard/payments/{dataset['sepa-paid']}").get_data(as_text=True)
    assert "mandate reference <code>P8LZ5Q0ZKXQ2NJHS</code> (id <code>mandate_1Abc</code>)" in sepa


def test_the_attempts_heading_says_no_zone_its_times_do_not_show(app, client_a, dataset, tenants):
    """The attempts' times are in the merchant's zone, each with its abbreviation: the
    heading claims no other zone."""
    from app.models import Merchant

    with app.app_context():
        db.session.get(Merchant, tenants.a_id).time_zone = "Europe/Paris"
        db.session.commit()
    html = client_a.get(f"/dashboard/payments/{dataset['visa-paid']}").get_data(as_text=True)
    attempts = html[html.index('id="attempts-heading"') :].split("</table>")[0]
    assert "(UTC)" not in attempts and "When</th>" in attempts
    assert re.search(r"\d\d:\d\d:\d\d CET</time>", attempts)
