"""The refunds lists are read from an index on MariaDB: the statements the refunds page and
GET /api/v1/refunds really run, EXPLAINed against thousands of refunds of two merchants in both
modes, walk a refunds index in (created_at, id) order (0017_refund_indexes) with no filesort, so
LIMIT stops after one page of rows."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, insert, select, text

from app.extensions import db
from app.models import Payment, Refund, utcnow
from tests.dashboard.test_modes import switch
from tests.support.api import auth_headers
from tests.support.factories import add_many_payments
from tests.support.pages import logged_in


@pytest.fixture
def many_refunds(app, tenants):
    start = utcnow()
    with app.app_context():
        for merchant_id, count in ((tenants.a_id, 1500), (tenants.b_id, 3000)):
            for livemode in (False, True):
                add_many_payments(
                    merchant_id,
                    count,
                    start=start,
                    status="SUCCESS",
                    livemode=livemode,
                    prefix=f"{merchant_id}-{livemode}",
                )
        payments = db.session.execute(
            select(Payment.id, Payment.merchant_id, Payment.livemode, Payment.created_at).order_by(
                Payment.id
            )
        )
        rows = [
            {
                "public_id": f"re_many{pid:024d}",
                "payment_id": pid,
                "merchant_id": merchant_id,
                "livemode": livemode,
                # 0.50 to 15.49 EUR by the payment's place in the table (ids start anywhere):
                # each merchant and mode has about a hundred in 10.00–11.00.
                "amount": 50 + n % 1500,
                "currency": "EUR",
                "status": "failed" if pid % 10 == 0 else "succeeded",
                "created_at": created_at,
                "updated_at": created_at,
            }
            for n, (pid, merchant_id, livemode, created_at) in enumerate(payments)
        ]
        db.session.execute(insert(Refund), rows)
        db.session.commit()
        db.session.execute(text("ANALYZE TABLE refunds, payments"))
        db.session.remove()


def refund_list_plans(app, call) -> list[dict]:
    """EXPLAIN of each refunds list query (newest first) that `call` runs."""
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "FROM refunds" in statement and "ORDER BY refunds.created_at DESC" in statement:
            captured.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        assert call().status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert captured, "no refunds list query ran"
    raw = engine.raw_connection()
    try:
        plans = []
        for statement, parameters in captured:
            # A merchant's list never walks the refunds of every merchant, whatever the
            # optimizer would estimate (at this size it chooses well; at 1M it did not).
            scoped = "refunds.merchant_id = " in statement
            assert scoped == ("IGNORE INDEX (ix_refunds_livemode_created" in statement), statement
            cursor = raw.cursor()
            cursor.execute("EXPLAIN " + statement, parameters)
            columns = [d[0] for d in cursor.description]
            plans += [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            cursor.close()
        return plans
    finally:
        raw.close()


BY_MERCHANT = {"ix_refunds_merchant_mode_created", "ix_refunds_merchant_status_created"}
TODAY = datetime.now(UTC).date().isoformat()


@pytest.mark.parametrize(
    ("who", "query", "allowed"),
    [
        ("merchant", "", BY_MERCHANT),
        ("merchant", "?status=failed", {"ix_refunds_merchant_status_created"}),
        ("operator", "", {"ix_refunds_livemode_created"}),
        ("api", "", BY_MERCHANT),
        ("api", "?status=failed", {"ix_refunds_merchant_status_created"}),
        # A day, a time: still the merchant's index, never the one of every
        # merchant's refunds (MariaDB chose it at 1M beside a second merchant: bench reads).
        ("merchant", f"?date_from={TODAY}&date_to={TODAY}", BY_MERCHANT),
        ("api", f"?created_gte={TODAY}T00:00:00Z", BY_MERCHANT),
    ],
)
def test_the_refunds_lists_read_an_index_in_order(app, tenants, many_refunds, who, query, allowed):
    if who == "api":
        client = app.test_client()
        path = "/api/v1/refunds" + query
        plans = refund_list_plans(
            app, lambda: client.get(path, headers=auth_headers(tenants.a_key))
        )
    else:
        client = logged_in(app, tenants.a_email if who == "merchant" else tenants.op_email)
        switch(client, "test")
        plans = refund_list_plans(app, lambda: client.get("/dashboard/refunds" + query))

    [refunds_plan] = [p for p in plans if p["table"] == "refunds"]
    [payments_plan] = [p for p in plans if p["table"] == "payments"]
    assert refunds_plan["key"] in allowed, plans
    assert "filesort" not in (refunds_plan["Extra"] or ""), plans
    assert plans[0]["table"] == "refunds", plans  # refunds drive, in order; LIMIT stops early
    assert payments_plan["type"] == "eq_ref", plans  # each refund's payment by its primary key


def test_an_amount_range_sorts_the_amount_index_entries_then_reads_only_its_page(
    app, tenants, many_refunds
):
    """Refund amounts match in amount order: the page's (created_at, id) are sorted from the
    merchant's amount index alone (currency and time in it, 0033) — or, where MariaDB expects
    the range's matches to be common, the merchant's refunds walked in order until a page is
    found — then only the page's refunds and their payments are read by primary key. Never a
    sort of whole rows."""
    client = logged_in(app, tenants.a_email)
    switch(client, "test")
    plans = refund_list_plans(
        app, lambda: client.get("/dashboard/refunds?amount_min=10&amount_max=11")
    )
    [inner] = [p for p in plans if p["select_type"] == "DERIVED"]
    extra = inner["Extra"] or ""
    if inner["key"] == "ix_refunds_merchant_amount":
        assert inner["type"] == "range" and "Using index" in extra, plans  # no row read to sort
    else:
        assert inner["key"] in BY_MERCHANT and "filesort" not in extra, plans  # in order
    for table in ("refunds", "payments"):
        [outer] = [p for p in plans if p["table"] == table and p["select_type"] == "PRIMARY"]
        assert outer["key"] == "PRIMARY" and outer["type"] == "eq_ref", plans
    html = client.get("/dashboard/refunds?amount_min=10&amount_max=11").get_data(as_text=True)
    refunds = re.findall(r"<code>(re_many\d+)</code>", html)
    amounts = re.findall(r'data-label="Amount"><span>(\d+\.\d\d) EUR', html)
    assert len(set(refunds)) == len(amounts) == 50, (refunds, amounts)  # a full page, once each
    assert all(10 <= float(a) <= 11 for a in amounts), amounts
