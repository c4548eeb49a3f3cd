"""The transactions list of one mode is still read from an index on MariaDB: the statement the
page really runs, EXPLAINed against thousands of payments of two merchants in both modes, uses
the index that leads with merchant and mode (migrations 0013_mode_scoped_keys,
0015_mode_indexes) and no filesort, so LIMIT 51 stops after one page of rows whatever the other
mode holds."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from app.extensions import db
from app.models import utcnow
from tests.support.factories import add_many_payments
from tests.support.pages import logged_in


@pytest.fixture
def many_payments(app, tenants):
    start = utcnow()
    with app.app_context():
        for livemode in (False, True):
            mode = "live" if livemode else "test"
            for status in ("SUCCESS", "FAILED"):
                add_many_payments(
                    tenants.a_id,
                    1500,
                    start=start,
                    status=status,
                    livemode=livemode,
                    prefix=f"{mode}-{status}",
                )
            # A few paid in part back: the refund filter's rows (0017_refund_indexes).
            add_many_payments(
                tenants.a_id,
                300,
                start=start,
                status="SUCCESS",
                livemode=livemode,
                prefix=f"{mode}-refunded",
                refunded_amount=50,
                refund_state="partial",
            )
        for status in ("SUCCESS", "FAILED"):  # the busier merchant, test mode only
            add_many_payments(tenants.b_id, 4000, start=start, status=status, prefix=status)
        db.session.commit()
        db.session.execute(text("ANALYZE TABLE payments"))  # fresh statistics for the planner
        db.session.remove()


def list_plans(app, client, path: str) -> list[dict]:
    """EXPLAIN of each keyset list query (payments, newest first) the page at `path` runs."""
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "FROM payments" in statement and "ORDER BY payments.created_at DESC" in statement:
            captured.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert captured, f"{path} ran no list query"
    raw = engine.raw_connection()
    try:
        plans = []
        for statement, parameters in captured:
            cursor = raw.cursor()
            cursor.execute("EXPLAIN " + statement, parameters)
            columns = [d[0] for d in cursor.description]
            plans += [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            cursor.close()
        return plans
    finally:
        raw.close()


# What each list may read, and how many bytes of the index's leading columns the read must use
# (EXPLAIN's key_len): merchant_id (INT, 4 bytes) and livemode (BOOLEAN, 1), or livemode
# alone. A merchant's list never walks the mode's own index (told so: it would read every
# other merchant's rows of the mode on the way); either way no row of the other mode is read.
# The indexes before migrations 0013 and 0015 fail this: read by merchant alone (4 bytes), they
# filter the other mode row by row, and the operator's list had no index leading with the mode.
BY_MERCHANT = "ix_payments_merchant_mode_created"
BY_MERCHANT_STATUS = "ix_payments_merchant_status_created"
BY_MODE = "ix_payments_livemode_created"
BY_MODE_STATUS = "ix_payments_status_created"
BY_MERCHANT_REFUND = "ix_payments_merchant_refund_created"
BY_MODE_REFUND = "ix_payments_refund_created"
MERCHANT_AND_MODE = 5
MODE = 1


@pytest.mark.parametrize(
    ("who", "path", "allowed"),
    [
        ("merchant", "/dashboard/payments", {BY_MERCHANT: MERCHANT_AND_MODE}),
        (
            "merchant",
            "/dashboard/payments?status=FAILED",
            {BY_MERCHANT_STATUS: MERCHANT_AND_MODE},
        ),
        (
            "merchant",
            "/dashboard/payments?refund_state=partial",
            {BY_MERCHANT_REFUND: MERCHANT_AND_MODE},
        ),
        ("operator", "/dashboard/payments?refund_state=partial", {BY_MODE_REFUND: MODE}),
        ("operator", "/dashboard/payments", {BY_MODE: MODE}),
        ("operator", "/dashboard/payments?status=FAILED", {BY_MODE_STATUS: MODE, BY_MODE: MODE}),
    ],
)
def test_the_list_of_one_mode_reads_its_index_without_sorting(
    app, tenants, many_payments, who, path, allowed
):
    client = logged_in(app, tenants.a_email if who == "merchant" else tenants.op_email)
    [plan] = list_plans(app, client, path)
    assert plan["key"] in allowed, plan
    assert int(plan["key_len"]) >= allowed[plan["key"]], plan  # the mode is read from the index
    assert plan["type"] in ("ref", "range"), plan  # never a scan of the whole table or index
    assert "filesort" not in (plan["Extra"] or ""), plan


def test_which_mode_a_merchant_sees_first_is_read_from_an_index(app, tenants, many_payments):
    """The first page after a log-in asks whether the merchant has live data (a live payment):
    an index dive on (merchant, mode), not a walk through a test-only merchant's payments."""
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "EXISTS" in statement and "FROM payments" in statement:
            captured.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    client = logged_in(app, tenants.b_email)  # test data only
    event.listen(engine, "before_cursor_execute", capture)
    try:
        assert client.get("/dashboard/payments").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    [(statement, parameters)] = captured
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN " + statement, parameters)
        columns = [d[0] for d in cursor.description]
        plans = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    finally:
        raw.close()
    [plan] = [p for p in plans if p["table"] == "payments"]
    assert int(plan["key_len"]) >= MERCHANT_AND_MODE, plan  # merchant and mode, both
    assert int(plan["rows"]) <= 10, plan
