"""Refunds everywhere in the dashboard: marked and filterable in the transactions list, in the
payments CSV, and a refunds page with filters, keyset pages, its CSV, one mode and one merchant."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta

from app.common import cursors
from app.extensions import db
from app.models import Merchant, Payment
from tests.dashboard.test_modes import switch
from tests.support.api import post_refund
from tests.support.factories import add_refund_rows
from tests.support.pages import logged_in
from tests.support.rows import get_row

T0 = datetime(2026, 11, 2, 9, 0, 0)


def payment_ids(html: str) -> list[str]:
    return re.findall(r'<th scope="row"><a href="/dashboard/payments/(pay_\w+)"', html)


def refund_ids(html: str) -> list[str]:
    return re.findall(r'<th scope="row"><code>(re_\w+)</code></th>', html)


def row_of(html: str, text: str) -> str:
    """The table row (<tr>…</tr>) of the list that holds `text`."""
    found = re.search(rf"<tr\b(?:(?!</tr>).)*{re.escape(text)}(?:(?!</tr>).)*</tr>", html, re.S)
    assert found, text
    return found.group(0)


def read_csv(response) -> list[dict]:
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_refunded_payments_are_marked_filtered_and_exported(app, tenants, client_a, paid_payment):
    partial = paid_payment(tenants.a_id, amount=5000).public_id
    full = paid_payment(tenants.a_id, amount=2000).public_id
    untouched = paid_payment(tenants.a_id, amount=3000).public_id
    api = app.test_client()
    assert post_refund(api, tenants.a_key, partial, {"amount": 1200}).status_code == 201
    assert post_refund(api, tenants.a_key, full).status_code == 201
    assert get_row(app, Payment, public_id=partial).refund_state == "partial"
    assert get_row(app, Payment, public_id=full).refund_state == "full"

    listing = client_a.get("/dashboard/payments").get_data(as_text=True)
    rows = {pid: row_of(listing, pid) for pid in (partial, full, untouched)}
    assert "Partially refunded" in rows[partial] and "12.00" in rows[partial]
    assert "Refunded" in rows[full] and "Partially" not in rows[full]
    assert "efunded" not in rows[untouched]

    for state, expected in (("partial", [partial]), ("full", [full]), ("any", [full, partial])):
        page = client_a.get(f"/dashboard/payments?refund_state={state}")
        assert page.status_code == 200
        assert payment_ids(page.get_data(as_text=True)) == expected
    assert client_a.get("/dashboard/payments?refund_state=some").status_code == 400

    exported = {
        r["payment_id"]: r for r in read_csv(client_a.get("/dashboard/payments/export.csv"))
    }
    assert (exported[partial]["refunded_amount"], exported[partial]["refund_state"]) == (
        "12.00",
        "partial",
    )
    assert exported[partial]["refunded_amount_minor"] == "1200"
    assert (exported[full]["refunded_amount"], exported[full]["refund_state"]) == ("20.00", "full")
    assert (exported[untouched]["refunded_amount"], exported[untouched]["refund_state"]) == (
        "0.00",
        "",
    )
    only_partial = read_csv(client_a.get("/dashboard/payments/export.csv?refund_state=partial"))
    assert [r["payment_id"] for r in only_partial] == [partial]


def test_the_refunds_page_lists_the_merchants_refunds_newest_first_linked_to_their_payments(
    app, tenants, client_a, paid_payment
):
    pay_id = paid_payment(tenants.a_id, amount=5000).public_id
    made = post_refund(app.test_client(), tenants.a_key, pay_id, {"amount": 700}).get_json()
    with app.app_context():
        older = add_refund_rows(tenants.a_id, n=2, start=T0)
        other_merchants = add_refund_rows(tenants.b_id, start=T0)
        live = add_refund_rows(tenants.a_id, livemode=True, start=T0)
        older_ids = [r.public_id for r in older]
        foreign = [other_merchants[0].public_id, live[0].public_id]
        db.session.commit()
    switch(client_a, "test")  # with live data, a session starts in live mode

    page = client_a.get("/dashboard/refunds")
    html = page.get_data(as_text=True)

    assert page.status_code == 200
    assert refund_ids(html) == [made["id"], *reversed(older_ids)]
    assert f'href="/dashboard/payments/{pay_id}"' in html
    assert "7.00" in html and "of 50.00" in html
    assert not any(refund_id in html for refund_id in foreign)
    assert 'aria-current="page">Refunds' in html

    switch(client_a, "live", back="/dashboard/refunds")
    assert refund_ids(client_a.get("/dashboard/refunds").get_data(as_text=True)) == foreign[1:]


def test_the_refunds_page_filters_by_status_day_and_amount(app, tenants, client_a):
    with app.app_context():
        first = add_refund_rows(tenants.a_id, n=2, start=T0, amount=1000)  # 10.00, 10.01
        failed = add_refund_rows(
            tenants.a_id, start=T0 + timedelta(days=1), status="failed", amount=5000
        )
        ids = [r.public_id for r in first], failed[0].public_id
        db.session.commit()
    (ten, ten_01), fifty = ids

    def shown(query: str) -> list[str]:
        page = client_a.get(f"/dashboard/refunds?{query}")
        assert page.status_code == 200, query
        return refund_ids(page.get_data(as_text=True))

    assert shown("status=failed") == [fifty]
    assert shown("status=succeeded") == [ten_01, ten]
    assert shown("date_from=2026-11-03") == [fifty]
    assert shown("date_to=2026-11-02") == [ten_01, ten]
    assert shown("amount_min=10.01&amount_max=49.99") == [ten_01]
    bad = client_a.get("/dashboard/refunds?date_from=2026-11-03&date_to=2026-11-02")
    assert bad.status_code == 400 and refund_ids(bad.get_data(as_text=True)) == []
    assert client_a.get("/dashboard/refunds?status=done").status_code == 400
    amounts = client_a.get("/dashboard/refunds?amount_min=10&amount_max=5")
    assert amounts.status_code == 400
    assert "The upper amount is below the lower one." in amounts.get_data(as_text=True)


def test_the_refunds_page_walks_keyset_pages_both_ways_and_refuses_a_foreign_cursor(
    app, tenants, client_a
):
    with app.app_context():
        ids = [r.public_id for r in add_refund_rows(tenants.a_id, n=53, start=T0)]
        db.session.commit()
    newest_first = list(reversed(ids))

    first = client_a.get("/dashboard/refunds").get_data(as_text=True)
    older_link = re.search(r'href="(/dashboard/refunds\?after=[^"]+)" rel="next"', first)
    second = client_a.get(older_link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    newer_link = re.search(r'href="(/dashboard/refunds\?before=[^"]+)" rel="prev"', second)
    back = client_a.get(newer_link.group(1).replace("&amp;", "&")).get_data(as_text=True)

    assert refund_ids(first) == newest_first[:50]
    assert refund_ids(second) == newest_first[50:]
    assert refund_ids(back) == newest_first[:50]
    # The transactions list's cursor is no cursor of this list: the first page, with a warning.
    with app.app_context():
        foreign = cursors.encode(T0, 1, "dashboard.payments")
    stale = client_a.get(f"/dashboard/refunds?after={foreign}").get_data(as_text=True)
    assert "not valid any more" in stale and refund_ids(stale) == newest_first[:50]


def test_the_refunds_csv_has_every_filtered_refund_of_the_mode_and_merchant(
    app, tenants, client_a, paid_payment
):
    pay_id = paid_payment(tenants.a_id, amount=5000).public_id
    made = post_refund(
        app.test_client(), tenants.a_key, pay_id, {"amount": 1250, "reason": "duplicate"}
    ).get_json()
    with app.app_context():
        failed = add_refund_rows(tenants.a_id, start=T0, status="failed", merchant_reference="=1+2")
        add_refund_rows(tenants.b_id, start=T0)
        add_refund_rows(tenants.a_id, livemode=True, start=T0)
        failed_id = failed[0].public_id
        db.session.get(Merchant, tenants.a_id).time_zone = "Europe/Berlin"
        db.session.commit()
    switch(client_a, "test")

    response = client_a.get("/dashboard/refunds/export.csv")
    rows = read_csv(response)

    assert "refunds-test-" in response.headers["Content-Disposition"]
    assert [r["refund_id"] for r in rows] == [made["id"], failed_id]
    mine = rows[0]
    assert mine["payment_id"] == pay_id
    assert (mine["amount"], mine["amount_minor"], mine["currency"]) == ("12.50", "1250", "EUR")
    assert (mine["status"], mine["reason"], mine["source"]) == ("succeeded", "duplicate", "api")
    assert mine["psp_refund_id"] == made["psp_refund_id"] and mine["livemode"] == "false"
    assert rows[1]["merchant_reference"] == "'=1+2"  # never a spreadsheet formula
    # T0 (09:00 UTC) in the merchant's zone, with the offset: CET is UTC+1 in November.
    assert rows[1]["created_at"] == "2026-11-02 10:00:00+01:00"
    only_failed = read_csv(client_a.get("/dashboard/refunds/export.csv?status=failed"))
    assert [r["refund_id"] for r in only_failed] == [failed_id]
    assert client_a.get("/dashboard/refunds/export.csv?amount_min=abc").status_code == 400


def test_an_operator_sees_every_merchants_refunds_and_narrows_to_one(app, tenants):
    with app.app_context():
        a = add_refund_rows(tenants.a_id, start=T0)[0].public_id
        b = add_refund_rows(tenants.b_id, start=T0 + timedelta(minutes=5))[0].public_id
        db.session.get(Merchant, tenants.a_id).time_zone = "Europe/Berlin"
        db.session.commit()
    operator = logged_in(app, tenants.op_email)

    assert refund_ids(operator.get("/dashboard/refunds").get_data(as_text=True)) == [b, a]
    narrowed = operator.get(f"/dashboard/refunds?merchant_id={tenants.a_id}")
    assert refund_ids(narrowed.get_data(as_text=True)) == [a]
    # Across merchants the export is in UTC, and says so; narrowed to one, in its zone.
    every = {r["refund_id"]: r for r in read_csv(operator.get("/dashboard/refunds/export.csv"))}
    assert every[a]["created_at"] == "2026-11-02 09:00:00+00:00"
    (one,) = read_csv(operator.get(f"/dashboard/refunds/export.csv?merchant_id={tenants.a_id}"))
    assert one["created_at"] == "2026-11-02 10:00:00+01:00"
