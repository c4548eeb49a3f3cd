"""The searches and pages of issue 27 are read from an index on MariaDB: the statements the pages
really run, EXPLAINed against thousands of payments of many customers, two merchants and both
modes. An email prefix, one customer's payments and the customers list read
ix_payments_merchant_email (merchant_id, livemode, customer_email, created_at, id;
0019_list_search); "any refund" reads the refund-state index once per state, in order; the
API's email, last-4 and brand filters read the merchant's email, last-4 and brand indexes."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import event, insert, text

from app.extensions import db
from app.models import Payment, utcnow
from app.models.payment import ACROSS_MERCHANTS, new_payment_id
from tests.dashboard.test_transactions import ROW_ID
from tests.support.api import auth_headers
from tests.support.pages import logged_in

BY_EMAIL = "ix_payments_merchant_email"
# A reference prefix: the merchant's own references, or all (0003) when that is narrower.
BY_REFERENCE = {
    "uq_payments_merchant_id_livemode_merchant_reference",
    "ix_payments_merchant_reference",
}
# Where a merchant's rows are a good share of its mode's, the mode's own index serves as well
# (as tests/dashboard/test_mode_indexes.py allows): key_len says the mode is read from it.
BY_REFUND = {"ix_payments_merchant_refund_created": 5 + 8, "ix_payments_refund_created": 1 + 8}
BY_DISPUTE = {"ix_payments_merchant_dispute_created": 5 + 7, "ix_payments_dispute_created": 1 + 7}
MERCHANT_AND_MODE = 5  # key_len of merchant_id (4 bytes) and livemode (1)
CUSTOMERS = 600


def _rows(merchant_id: int, count: int, *, livemode: bool, tag: str) -> list[dict]:
    """`count` payments one second apart, newest first, of 600 customers (5 each for 3000),
    a tenth refunded in part and a tenth in full."""
    start = utcnow()
    rows = []
    for i in range(count):
        state = ("partial", "full", None, None, None, None, None, None, None, None)[i % 10]
        rows.append(
            {
                "public_id": new_payment_id(),
                "merchant_id": merchant_id,
                "merchant_reference": f"{tag}-{i:05d}",
                "amount": 1000 + i,
                "currency": ("EUR", "USD")[i % 2],
                "payment_type": "SALE",
                "customer_email": f"shopper{i % CUSTOMERS:04d}@example.com",
                "success_url": "https://shop.example/ok",
                "cancel_url": "https://shop.example/cancel",
                "metadata_": {},
                "status": "SUCCESS" if i % 4 else "FAILED",
                "status_version": 3,
                "livemode": livemode,
                "refunded_amount": {"partial": 100, "full": 1000 + i, None: 0}[state],
                "refund_state": state,
                "dispute_state": ("open", "lost", "won")[i % 3] if i % 40 == 7 else None,
                # Paid by card; one in 50 an amex, last 4 spread over 1000 values.
                "method_type": "card",
                "card_brand": "amex" if i % 50 == 0 else "visa",
                "card_last4": f"{i % 1000:04d}",
                "created_at": start - timedelta(seconds=i),
                "updated_at": start - timedelta(seconds=i),
            }
        )
    return rows


@pytest.fixture
def many_customers(app, tenants):
    with app.app_context():
        for merchant_id, livemode, count in (
            (tenants.a_id, False, 3000),
            (tenants.a_id, True, 3000),
            (tenants.b_id, False, 6000),
        ):
            rows = _rows(merchant_id, count, livemode=livemode, tag=f"o{int(livemode)}")
            db.session.execute(insert(Payment), rows)
        db.session.commit()
        db.session.execute(text("ANALYZE TABLE payments"))
        db.session.remove()


def plans(
    app, client, path: str, wanted: Callable[[str], bool], headers: dict | None = None
) -> list[dict]:
    """EXPLAIN of each statement the page at `path` runs that `wanted` picks."""
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if wanted(statement):
            captured.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        response = client.get(path, headers=headers or {})
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert captured, f"{path} ran no such query"
    raw = engine.raw_connection()
    try:
        found = []
        for statement, parameters in captured:
            cursor = raw.cursor()
            cursor.execute("EXPLAIN " + statement, parameters)
            columns = [d[0] for d in cursor.description]
            found += [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            cursor.close()
        return found
    finally:
        raw.close()


def payments_list(statement: str) -> bool:
    return "FROM payments" in statement and "ORDER BY payments.created_at DESC" in statement


def grouped_by_email(statement: str) -> bool:
    return "GROUP BY payments.customer_email" in statement and "JOIN disputes" not in statement


def chargebacks_by_email(statement: str) -> bool:
    return "GROUP BY payments.customer_email" in statement and "JOIN disputes" in statement


def merchant_and_mode_read(plan: dict, key: str) -> None:
    assert plan["key"] == key, plan
    assert int(plan["key_len"]) >= MERCHANT_AND_MODE, plan
    assert plan["type"] in ("ref", "range"), plan


def test_an_email_prefix_is_searched_through_the_email_index(app, tenants, many_customers):
    client = logged_in(app, tenants.a_email)
    found = plans(app, client, "/dashboard/payments?q=Shopper012", payments_list)
    reference, email = found  # one branch each, in this order (no OR for the planner to scan)
    merchant_and_mode_read(email, BY_EMAIL)
    assert int(email["key_len"]) > MERCHANT_AND_MODE, email  # the prefix is read from it
    # The prefix narrows the read to its customers' rows (10 customers × 5 payments), not the
    # merchant's 3000.
    assert int(email["rows"]) < 200, email
    assert reference["key"] in BY_REFERENCE and reference["type"] == "range", reference


def test_any_refund_reads_the_refund_index_in_order_once_per_state(app, tenants, many_customers):
    client = logged_in(app, tenants.a_email)
    found = plans(app, client, "/dashboard/payments?refund_state=any", payments_list)
    assert len(found) == 2, found  # partial, then full
    for plan in found:
        assert plan["key"] in BY_REFUND, plan
        # merchant (or not), mode and the state from the index: an equality, walked in order
        assert int(plan["key_len"]) >= BY_REFUND[plan["key"]], plan
        assert plan["type"] in ("ref", "range"), plan
        assert "filesort" not in (plan["Extra"] or ""), plan  # LIMIT 51 stops the walk


def test_any_dispute_reads_the_dispute_index_in_order_once_per_state(app, tenants, many_customers):
    client = logged_in(app, tenants.a_email)
    found = plans(app, client, "/dashboard/payments?dispute_state=any", payments_list)
    assert len(found) == 3, found  # open, lost, won
    for plan in found:
        assert plan["key"] in BY_DISPUTE, plan
        assert int(plan["key_len"]) >= BY_DISPUTE[plan["key"]], plan  # the state is read too
        assert plan["type"] in ("ref", "range"), plan
        assert "filesort" not in (plan["Extra"] or ""), plan


def test_a_customers_payments_come_newest_first_from_the_email_index(app, tenants, many_customers):
    client = logged_in(app, tenants.a_email)
    path = "/dashboard/customers/shopper0042@example.com"
    [listing] = plans(app, client, path, payments_list)
    merchant_and_mode_read(listing, BY_EMAIL)
    assert int(listing["key_len"]) > MERCHANT_AND_MODE, listing  # the email too
    assert "filesort" not in (listing["Extra"] or ""), listing
    [totals] = plans(app, client, path, lambda s: "GROUP BY payments.currency" in s)
    merchant_and_mode_read(totals, BY_EMAIL)


@pytest.mark.parametrize("query", ["", "?q=shopper03"])
def test_the_customers_list_walks_the_email_index_in_order(app, tenants, many_customers, query):
    client = logged_in(app, tenants.a_email)
    found = plans(app, client, f"/dashboard/customers{query}", grouped_by_email)
    listing, per_currency = found  # the page of emails, then their totals
    for plan in found:
        merchant_and_mode_read(plan, BY_EMAIL)
    # Grouped as the index is read, covered by it: no temporary table, no sort, LIMIT stops it.
    extra = listing["Extra"] or ""
    assert "Using index" in extra and "temporary" not in extra and "filesort" not in extra, listing


def test_the_customers_chargebacks_are_read_from_the_page_emails_index_ranges(
    app, tenants, many_customers
):
    """The list's net subtracts chargebacks: one more query, which scans neither payments nor
    disputes (every merchant's): it reads the page's emails through the merchant's email
    index, then each payment's disputes by the payment."""
    client = logged_in(app, tenants.a_email)
    found = plans(app, client, "/dashboard/customers", chargebacks_by_email)
    [payments] = [plan for plan in found if plan["table"] == "payments"]
    [disputes] = [plan for plan in found if plan["table"] == "disputes"]
    merchant_and_mode_read(payments, BY_EMAIL)
    assert disputes["key"] == "ix_disputes_payment" and disputes["type"] == "ref", disputes


def test_the_apis_email_last4_and_brand_filters_read_the_merchants_indexes(
    app, tenants, many_customers
):
    """GET /api/v1/payments?customer_email=…|card_last4=…|card_brand=… (issue 27): each reads
    its own index of the merchant and mode, the value read from it too (0018, 0019)."""
    client = app.test_client()
    for query, index in (
        ("customer_email=Shopper012", BY_EMAIL),
        ("customer_email=shopper0120@example.com", BY_EMAIL),
        ("card_last4=0042", "ix_payments_merchant_last4_created"),
        ("card_brand=amex", "ix_payments_merchant_brand_created"),
    ):
        path = f"/api/v1/payments?{query}&limit=100"
        [plan] = plans(app, client, path, payments_list, auth_headers(tenants.a_key))
        merchant_and_mode_read(plan, index)
        assert int(plan["key_len"]) > MERCHANT_AND_MODE, (query, plan)
        assert int(plan["rows"]) < 200, (query, plan)  # of the merchant's 3000 in this mode


def test_a_merchants_pages_never_walk_an_index_of_every_merchant(app, tenants, many_customers):
    """Page 2 after a cursor, a time range and a short email prefix of one merchant, beside a
    busier merchant whose payments lie between its own: read through an index leading with
    the merchant and mode, never (livemode, created_at) or the bare email index, which walk the
    other merchant's rows too (MariaDB chose them for these once merchants were of a size)."""
    api = app.test_client()
    headers = auth_headers(tenants.a_key)
    first = api.get("/api/v1/payments?limit=100", headers=headers).get_json()
    since = (utcnow() - timedelta(minutes=20)).isoformat() + "Z"
    dashboard = logged_in(app, tenants.a_email)
    html = dashboard.get("/dashboard/payments").get_data(as_text=True)
    older = re.search(r'href="([^"]+)" rel="next"', html).group(1).replace("&amp;", "&")
    for client, path, auth in (
        (api, f"/api/v1/payments?limit=100&starting_after={first['next_cursor']}", headers),
        (api, f"/api/v1/payments?created_gte={since}&limit=100", headers),
        (api, "/api/v1/payments?customer_email=shopper0&limit=100", headers),
        (dashboard, older, None),
        (dashboard, f"/dashboard/payments?q=shopper0&date_from={utcnow().date()}", None),
    ):
        for plan in plans(app, client, path, payments_list, auth):
            assert plan["key"] not in ACROSS_MERCHANTS, (path, plan)
            assert int(plan["key_len"]) >= MERCHANT_AND_MODE, (path, plan)


@pytest.fixture
def apart(app, tenants):
    """3000 payments of one merchant: 2250 paid in EUR, 750 failed in USD (two filters that
    never meet)."""
    with app.app_context():
        rows = _rows(tenants.a_id, 3000, livemode=False, tag="apart")
        for row in rows:
            row["currency"] = "USD" if row["status"] == "FAILED" else "EUR"
        db.session.execute(insert(Payment), rows)
        db.session.commit()
        db.session.execute(text("ANALYZE TABLE payments"))
        db.session.remove()


def test_filters_that_never_meet_stop_after_the_bound_and_say_so(app, tenants, apart):
    client = logged_in(app, tenants.a_email)
    never = "/dashboard/payments?status=FAILED&currency=EUR"
    bound = app.config["LIST_ROWS_EXAMINED_MAX"]
    app.config["LIST_ROWS_EXAMINED_MAX"] = 500  # below either filter's rows
    try:
        html = client.get(never).get_data(as_text=True)
        assert 'id="search-stopped"' in html and "after reading 500 payments" in html
        assert "None found before the search stopped." in html
        # A filter whose rows are there fills its page without a word.
        full = client.get("/dashboard/payments?status=FAILED").get_data(as_text=True)
        assert 'id="search-stopped"' not in full and len(ROW_ID.findall(full)) == 50
    finally:
        app.config["LIST_ROWS_EXAMINED_MAX"] = bound
    # Within the bound the same filters read to the end: nothing matches, and it says that.
    html = client.get(never).get_data(as_text=True)
    assert 'id="search-stopped"' not in html and "No payments match these filters" in html


def test_an_amount_range_sorts_index_entries_then_reads_only_its_page(app, tenants, many_customers):
    """Amounts match in amount order: the page's (created_at, id) come from the amount index
    alone (covering: currency and time in it, 0033) and are sorted there — or, where MariaDB
    expects the matches to be common, from the merchant's payments walked in order — and only
    the page's rows are then read, by primary key. Sorting whole rows cost 133 / 304 ms p50 /
    p95 at 1M."""
    client = logged_in(app, tenants.a_email)
    path = "/dashboard/payments?amount_min=10&amount_max=10.50"
    html = client.get(path).get_data(as_text=True)
    assert len(ROW_ID.findall(html)) == 50  # 51 of the merchant's test payments in 10.00–10.50
    found = plans(app, client, path, payments_list)
    [inner] = [p for p in found if p["select_type"] == "DERIVED"]
    [rows] = [p for p in found if p["table"] == "payments" and p["select_type"] == "PRIMARY"]
    if inner["key"] == "ix_payments_merchant_amount":
        merchant_and_mode_read(inner, "ix_payments_merchant_amount")
        assert int(inner["key_len"]) > MERCHANT_AND_MODE, inner  # the amount is read from it
        assert "Using index" in (inner["Extra"] or ""), inner  # no row is read to sort
    else:  # matches expected common: the merchant's payments walked in order to a page
        merchant_and_mode_read(inner, "ix_payments_merchant_mode_created")
        assert "filesort" not in (inner["Extra"] or ""), inner
    assert rows["key"] == "PRIMARY" and rows["type"] == "eq_ref", found


def test_an_operators_brand_search_across_merchants_reads_the_brand_index(
    app, tenants, many_customers
):
    """An operator's list of every merchant, searched by a card brand: (livemode, card_brand,
    created_at, id) (0033), walked in order, as type, last 4 and failure reason are."""
    client = logged_in(app, tenants.op_email)
    found = plans(app, client, "/dashboard/payments?q=amex", payments_list)
    [brand] = [p for p in found if p["key"] == "ix_payments_brand_created"]
    assert brand["type"] in ("ref", "range") and int(brand["key_len"]) > 1, found
    assert "filesort" not in (brand["Extra"] or ""), found


def test_a_search_with_more_matches_to_sort_than_the_bound_says_it_stopped(
    app, tenants, many_customers
):
    """A prefix's matches are sorted into the list's order; more of them than the bound stop
    MariaDB mid-sort (error 1028): that is the search stopping, said on the page, not the
    database being down. An amount range sorts its index entries unbounded: a wide one fills
    its page."""
    client = logged_in(app, tenants.a_email)
    bound = app.config["LIST_ROWS_EXAMINED_MAX"]
    app.config["LIST_ROWS_EXAMINED_MAX"] = 100  # below the 500 rows of shopper02…'s customers
    try:
        answer = client.get("/dashboard/payments?q=shopper02")
        html = answer.get_data(as_text=True)
        assert answer.status_code == 200, html[:300]
        assert 'id="search-stopped"' in html and "after reading 100 payments" in html
        wide = client.get("/dashboard/payments?amount_min=10&amount_max=21")  # 1100 of them
        html = wide.get_data(as_text=True)
        assert wide.status_code == 200 and 'id="search-stopped"' not in html
        assert len(ROW_ID.findall(html)) == 50
    finally:
        app.config["LIST_ROWS_EXAMINED_MAX"] = bound
