"""Customers: one email's payments, totals per currency, refunds and disputes, per merchant and
mode; the customers list with its email-prefix search; emails in any case are one customer."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from app.extensions import db
from app.models import Dispute, Payment, Refund
from app.reporting import customers as customer_reads
from tests.dashboard.test_modes import switch
from tests.support.factories import add_payment

NOW = datetime(2026, 11, 20, 12, 0, 0)
ROW_ID = re.compile(r'href="/dashboard/payments/(pay_[A-Za-z0-9]+)"')
ANN = "ann@example.com"


def html(response, status: int = 200) -> str:
    assert response.status_code == status, response.get_data(as_text=True)[:400]
    return response.get_data(as_text=True)


@pytest.fixture
def ann(app, tenants, client_a, client_b, client_op):
    """Ann's payments at merchant A (test mode), in two currencies, one refunded in part and one
    disputed; her live payment, another shopper's, and merchant B's Ann must not count. Every
    client views test data."""
    with app.app_context():

        def pay(minutes: int, **spec):
            spec.setdefault("email", ANN)
            return add_payment(
                spec.pop("merchant_id", tenants.a_id),
                created_at=NOW - timedelta(minutes=minutes),
                **spec,
            )

        paid = pay(1, amount=5000, currency="EUR", email="Ann@Example.COM")
        pay(2, amount=2500, currency="EUR")
        pay(3, amount=700, currency="EUR", status="FAILED")
        usd = pay(4, amount=1200, currency="USD")
        pay(5, amount=9900, currency="EUR", livemode=True)
        pay(6, amount=100, currency="EUR", email="annette@example.com")
        pay(7, amount=100, currency="EUR", email="bob@example.com")
        pay(1, amount=8800, currency="EUR", merchant_id=tenants.b_id)
        db.session.flush()
        paid.count_refunded(1500)
        refund = Refund(
            payment_id=paid.id,
            merchant_id=tenants.a_id,
            livemode=False,
            amount=1500,
            currency="EUR",
            status="succeeded",
            reason="requested_by_customer",
            source="dashboard",
            created_at=NOW,
        )
        dispute = Dispute(
            payment_id=usd.id,
            merchant_id=tenants.a_id,
            livemode=False,
            psp_dispute_id="du_customer_test",
            amount=1200,
            currency="USD",
            reason="fraudulent",
            status="needs_response",
            evidence_due_by=NOW + timedelta(days=7),
        )
        db.session.add_all([refund, dispute])
        db.session.commit()
        ids = {
            "paid": paid.public_id,
            "usd": usd.public_id,
            "refund": refund.public_id,
            "dispute": dispute.public_id,
        }
    for client in (client_a, client_b, client_op):
        switch(client, "test")
    return ids


def test_an_email_is_kept_in_lower_case_whoever_writes_it(app, tenants, ann):
    with app.app_context():
        stored = db.session.query(Payment).filter_by(public_id=ann["paid"]).one()
        assert stored.customer_email == ANN


def test_the_customer_page_shows_totals_per_currency_payments_refunds_and_disputes(client_a, ann):
    page = html(client_a.get(f"/dashboard/customers/{ANN}"))
    eur = page.split('data-currency="EUR"', 1)[1].split("</div>\n    </div>", 1)[0]
    # Paid 75.00 (the failed 7.00 not), 15.00 refunded, 60.00 net; 3 EUR payments, 2 paid.
    assert "3 payments, 2 paid" in eur
    assert "60.00" in eur and "75.00" in eur and "15.00" in eur
    usd = page.split('data-currency="USD"', 1)[1].split("</div>\n    </div>", 1)[0]
    assert "12.00" in usd and "1 payment, 1 paid" in usd
    # Her four test payments at A, newest first; not the live one, nor Annette's, nor B's.
    assert ROW_ID.findall(page)[:4][0] == ann["paid"]
    assert len(set(ROW_ID.findall(page))) == 4
    assert ann["refund"] in page and "15.00" in page
    assert ann["dispute"] in page and "fraudulent" in page


def test_a_cut_refunds_or_disputes_section_says_so_and_links_the_whole_list(
    app, tenants, client_a, ann, monkeypatch
):
    """Past RELATED_LIMIT the page shows the latest and says how many there are; at the limit
    it says nothing. Neither list filters by customer: the link is to the whole list."""
    monkeypatch.setattr(customer_reads, "RELATED_LIMIT", 1)
    page = html(client_a.get(f"/dashboard/customers/{ANN}"))
    assert "Showing the latest" not in page  # one refund, one dispute: all shown
    with app.app_context():
        paid = db.session.query(Payment).filter_by(public_id=ann["paid"]).one()
        for minutes in (1, 2):
            db.session.add(
                Refund(
                    payment_id=paid.id,
                    merchant_id=tenants.a_id,
                    livemode=False,
                    amount=100,
                    currency="EUR",
                    status="succeeded",
                    source="dashboard",
                    created_at=NOW - timedelta(minutes=minutes),
                )
            )
        db.session.commit()
    page = html(client_a.get(f"/dashboard/customers/{ANN}"))
    refunds = page.split('id="refunds-heading"', 1)[1].split("</section>", 1)[0]
    assert ann["refund"] in refunds  # the newest
    assert refunds.count("<tr>") == 2  # the heading row and the one refund shown
    note = re.search(r'<p class="muted cut-note">(.*?)</p>', refunds, re.S)
    assert note, refunds
    assert "Showing the latest 1 of 3 refunds." in note.group(1)
    assert 'href="/dashboard/refunds"' in note.group(1)
    disputes = page.split('id="disputes-heading"', 1)[1].split("</section>", 1)[0]
    assert "cut-note" not in disputes


def test_the_customer_page_pages_newest_first_with_cursors(app, tenants, client_a):
    with app.app_context():
        for i in range(55):
            add_payment(tenants.a_id, email="many@example.com", created_at=NOW - timedelta(hours=i))
        db.session.commit()
    first = html(client_a.get("/dashboard/customers/many@example.com"))
    older = re.search(r'href="([^"]*after=[^"]+)"', first).group(1).replace("&amp;", "&")
    second = html(client_a.get(older))
    ids = ROW_ID.findall(first) + ROW_ID.findall(second)
    assert len(ids) == len(set(ids)) == 55


def test_the_customer_page_shows_the_mode_in_view_only(client_a, ann):
    switch(client_a, "live")
    page = html(client_a.get(f"/dashboard/customers/{ANN}"))
    assert len(set(ROW_ID.findall(page))) == 1 and "99.00" in page
    assert ann["paid"] not in page


def test_an_email_in_another_case_leads_to_the_same_customer(client_a, ann):
    response = client_a.get("/dashboard/customers/ANN@example.com")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/dashboard/customers/{ANN}"


def test_no_customer_outside_the_merchant_and_mode(client_a, client_b, ann):
    html(client_a.get("/dashboard/customers/nobody@example.com"), 404)
    html(client_b.get(f"/dashboard/customers/{ANN}"), 200)  # B's own Ann: only B's payment
    b_page = html(client_b.get(f"/dashboard/customers/{ANN}"))
    assert ann["paid"] not in b_page and "88.00" in b_page


def test_an_operator_opens_a_customer_of_one_merchant(client_op, tenants, ann):
    html(client_op.get(f"/dashboard/customers/{ANN}"), 404)
    page = html(client_op.get(f"/dashboard/customers/{ANN}?merchant_id={tenants.a_id}"))
    assert ann["paid"] in page
    assert "Choose which one" in html(client_op.get("/dashboard/customers"))


def test_every_payment_with_an_email_links_to_its_customer(client_a, ann):
    link = f'href="/dashboard/customers/{ANN}"'
    assert link in html(client_a.get("/dashboard/payments"))
    assert link in html(client_a.get(f"/dashboard/payments/{ann['paid']}"))


def test_the_customers_list_counts_and_sums_and_searches_by_prefix(client_a, ann):
    page = html(client_a.get("/dashboard/customers"))
    emails = re.findall(r'href="/dashboard/customers/([^"]+)"', page)
    assert emails == [ANN, "annette@example.com", "bob@example.com"]  # email order
    ann_row = page.split(f"/customers/{ANN}", 1)[1].split("</tr>", 1)[0]
    assert ">4<" in ann_row.replace(" ", "")  # four payments
    assert "75.00" in ann_row and "15.00" in ann_row and "60.00" in ann_row and "12.00" in ann_row
    found = html(client_a.get("/dashboard/customers?q=ANN"))
    assert re.findall(r'href="/dashboard/customers/([^"]+)"', found) == [
        ANN,
        "annette@example.com",
    ]
    assert "Search customers: <strong>ANN</strong>" in found  # the chip of the active search


def test_the_customers_list_pages_in_email_order(app, tenants, client_a, monkeypatch):
    monkeypatch.setattr(customer_reads, "PAGE_SIZE", 2)
    with app.app_context():
        for name in ("c", "a", "d", "b", "e"):
            add_payment(tenants.a_id, email=f"{name}@example.com", created_at=NOW)
        db.session.commit()
    seen, path = [], "/dashboard/customers"
    while path:
        page = html(client_a.get(path))
        seen += re.findall(r'<th scope="row"><a href="/dashboard/customers/([^"]+)"', page)
        more = re.search(r'href="([^"]*after=[^"]+)" rel="next"', page)
        path = more.group(1).replace("&amp;", "&") if more else None
    assert seen == [f"{n}@example.com" for n in "abcde"]


def test_a_chargeback_withdrawn_counts_against_the_customers_net_until_reinstated(
    app, client_a, ann
):
    """As on the overview: the page's and the list's net leave out money a dispute took back."""

    def usd_net() -> tuple[str, str]:
        page = html(client_a.get(f"/dashboard/customers/{ANN}"))
        card = page.split('data-currency="USD"', 1)[1].split("</dl>", 1)[0]
        listed = html(client_a.get("/dashboard/customers"))
        row = listed.split(f"/customers/{ANN}", 1)[1].split("</tr>", 1)[0]
        return card, row

    def set_funds(**moments) -> None:
        with app.app_context():
            dispute = db.session.query(Dispute).filter_by(public_id=ann["dispute"]).one()
            for name, value in moments.items():
                setattr(dispute, name, value)
            db.session.commit()

    set_funds(funds_withdrawn_at=NOW)
    card, row = usd_net()
    assert re.search(r"0\.00\s*USD.*net", card, re.S) and "Chargebacks" in card
    assert re.search(r"(?<![\d.])0\.00 USD", row)  # the list's net, as the page's
    set_funds(funds_reinstated_at=NOW + timedelta(days=30))  # won: the money came back
    card, row = usd_net()
    assert re.search(r"12\.00\s*USD.*net", card, re.S) and "Chargebacks" not in card
