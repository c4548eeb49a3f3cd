"""The dispute lists are read from an index on MariaDB, and the API's loads the payments of a
page in one query: the statements GET /api/v1/disputes (by status or not) and the disputes page
(due soonest first, past due, every dispute, and the banner) really run, EXPLAINed against
thousands of disputes of two merchants in both modes, walk an index leading with merchant and
mode in the list's order (0016_disputes, 0020_dispute_indexes), with no filesort."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import event, insert, select, text

from app.extensions import db
from app.models import Dispute, Payment, utcnow
from app.reporting.disputes import DUE_LIMIT
from tests.core.test_api_list_queries import count_queries
from tests.dashboard.test_modes import switch
from tests.support.api import auth_headers
from tests.support.factories import add_many_payments
from tests.support.pages import logged_in

# Of every ten disputes: most decided or under review, a few waiting for an answer.
STATUSES = ("won", "lost", "lost", "under_review", "won", "needs_response", "lost",
            "warning_needs_response", "warning_closed", "won")  # fmt: skip


def add_disputes(merchant_id: int | None = None) -> None:
    """One dispute per payment (of `merchant_id`, or every one), due an hour apart around now."""
    now = utcnow()
    stmt = select(Payment.id, Payment.merchant_id, Payment.livemode, Payment.created_at)
    if merchant_id is not None:
        stmt = stmt.where(Payment.merchant_id == merchant_id)
    rows = [
        {
            "public_id": f"dsp_many{pid:024d}",
            "payment_id": pid,
            "merchant_id": mid,
            "livemode": livemode,
            "psp": "stripe",
            "psp_dispute_id": f"dp_many_{pid}",
            "amount": 100,
            "currency": "EUR",
            "reason": "fraudulent",
            "status": STATUSES[pid % len(STATUSES)],
            "evidence_due_by": now + timedelta(hours=(pid % 200) - 40),
            "has_evidence": False,
            "submission_count": 0,
            "created_at": created_at,
            "updated_at": created_at,
        }
        for pid, mid, livemode, created_at in db.session.execute(stmt)
    ]
    db.session.execute(insert(Dispute), rows)


@pytest.fixture
def many_disputes(app, tenants):
    start = utcnow()
    with app.app_context():
        for merchant_id, count in ((tenants.a_id, 1500), (tenants.b_id, 3000)):
            for livemode in (False, True):
                prefix = f"{merchant_id}-{livemode}"
                add_many_payments(
                    merchant_id, count, start=start, status="SUCCESS", livemode=livemode,
                    prefix=prefix,
                )  # fmt: skip
        add_disputes()
        db.session.commit()
        db.session.execute(text("ANALYZE TABLE disputes, payments"))
        db.session.remove()


def dispute_plans(app, call) -> list[tuple[str, dict]]:
    """(statement, EXPLAIN row of the disputes table) of each disputes query `call` runs."""
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "FROM disputes" in statement and "payments.id IN" not in statement:
            captured.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        assert call().status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    raw = engine.raw_connection()
    try:
        plans = []
        for statement, parameters in captured:
            cursor = raw.cursor()
            cursor.execute("EXPLAIN " + statement, parameters)
            columns = [d[0] for d in cursor.description]
            for row in cursor.fetchall():
                plan = dict(zip(columns, row, strict=True))
                if plan["table"] == "disputes":
                    plans.append((statement, plan))
            cursor.close()
        return plans
    finally:
        raw.close()


NEWEST = "ix_disputes_merchant_mode_created"
BY_STATUS = "ix_disputes_merchant_mode_status_created"
BY_DUE = "ix_disputes_merchant_mode_status_due"
BY_ID = "ix_disputes_merchant_mode_id"
MERCHANT_AND_MODE = 5  # EXPLAIN's key_len: merchant_id (INT, 4 bytes) and livemode (1)


def assert_in_order(plan: dict, allowed: set[str], statement: str) -> None:
    assert plan["key"] in allowed, (statement, plan)
    assert int(plan["key_len"]) >= MERCHANT_AND_MODE, (statement, plan)
    assert plan["type"] in ("ref", "range"), (statement, plan)
    assert "filesort" not in (plan["Extra"] or ""), (statement, plan)


@pytest.mark.parametrize(
    ("query", "allowed"), [("", {NEWEST}), ("?status=needs_response", {BY_STATUS})]
)
def test_the_api_list_reads_an_index_in_order(app, tenants, many_disputes, query, allowed):
    client = app.test_client()
    [(statement, plan)] = dispute_plans(
        app, lambda: client.get("/api/v1/disputes" + query, headers=auth_headers(tenants.a_key))
    )
    assert_in_order(plan, allowed, statement)


def test_the_disputes_page_and_its_banner_read_indexes_in_order(app, tenants, many_disputes):
    client = logged_in(app, tenants.a_email)
    switch(client, "test")
    plans = dispute_plans(app, lambda: client.get("/dashboard/disputes"))

    due = [(s, p) for s, p in plans if "ORDER BY disputes.evidence_due_by, disputes.id" in s]
    every = [(s, p) for s, p in plans if "ORDER BY disputes.id DESC" in s]
    banner = [(s, p) for s, p in plans if "count(*)" in s]
    assert len(due) == 2 and len(every) == 1 and banner, [s for s, _ in plans]
    for statement, plan in due:  # one read per status that needs a response, merged
        assert_in_order(plan, {BY_DUE}, statement)
    for statement, plan in every:
        assert_in_order(plan, {BY_ID}, statement)
    for statement, plan in banner:
        assert plan["key"] == BY_DUE and plan["type"] == "range", (statement, plan)


def test_the_api_list_loads_its_payments_in_one_query_whatever_the_page_size(app, client, tenants):
    with app.app_context():
        add_many_payments(tenants.a_id, 30, start=utcnow(), status="SUCCESS", prefix="few")
        add_disputes(tenants.a_id)
        db.session.commit()
    headers = auth_headers(tenants.a_key)
    client.get("/api/v1/disputes?limit=1", headers=headers)  # records the key's use

    small, small_queries = count_queries(
        app, lambda: client.get("/api/v1/disputes?limit=2", headers=headers)
    )
    large, large_queries = count_queries(
        app, lambda: client.get("/api/v1/disputes?limit=25", headers=headers)
    )

    assert len(small.get_json()["data"]) == 2 and len(large.get_json()["data"]) == 25
    assert all(d["payment_id"].startswith("pay_") for d in large.get_json()["data"])
    assert large_queries == small_queries


def test_the_page_lists_the_next_due_and_says_how_many_need_a_response(app, tenants, many_disputes):
    client = logged_in(app, tenants.a_email)
    switch(client, "test")
    page = client.get("/dashboard/disputes").get_data(as_text=True)
    shown = re.search(r"\(the (\d+) due soonest of (\d+)\)", page)
    assert shown, "the due list says it shows only the soonest"
    assert int(shown.group(1)) == DUE_LIMIT < int(shown.group(2))
    due_table = page.split("Every dispute")[0].split("Past due")[0]
    assert due_table.count("/dashboard/disputes/dsp_") == DUE_LIMIT
