"""The overview's figures are read through indexes on MariaDB: every aggregate the page runs
(payments, refunds, disputes, and the attempts behind the authorization rate), EXPLAINed
against thousands of rows of two merchants in both modes, reads a range of an index that leads
with merchant and mode (or, for the attempts, one payment's entries), never the whole table; and
the page reads each table once, not once per day or per figure."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from sqlalchemy import event, insert, text

from app.extensions import db
from app.models import Dispute, PaymentAttempt, utcnow
from tests.dashboard.test_mode_indexes import many_payments  # noqa: F401 (a fixture)
from tests.support.factories import add_many_payments, add_payment, add_refund_rows
from tests.support.pages import logged_in

FIGURE_TABLES = ("payments", "refunds", "disputes")


@pytest.fixture
def refunds_disputes_attempts(app, tenants, many_payments):  # noqa: F811
    now = utcnow()
    with app.app_context():
        # A year and more of history before them: the period is a small part of the merchant's
        # payments, as it is on a real account.
        for livemode in (False, True):
            add_many_payments(
                tenants.a_id,
                10_000,
                start=now - timedelta(days=400),
                status="SUCCESS",
                livemode=livemode,
                prefix="old-" + str(livemode),
            )
        for merchant_id in (tenants.a_id, tenants.b_id):
            for livemode in (False, True):
                add_refund_rows(
                    merchant_id, livemode=livemode, n=300, start=now - timedelta(days=3)
                )
        paid = add_payment(tenants.a_id, created_at=now - timedelta(days=2))
        disputes = [
            {
                "payment_id": paid.id,
                "merchant_id": merchant_id,
                "livemode": livemode,
                "psp_dispute_id": f"dp_{uuid4().hex}",
                "amount": 100,
                "currency": "EUR",
                "status": "needs_response",
                "created_at": now - timedelta(minutes=i),
            }
            for merchant_id in (tenants.a_id, tenants.b_id)
            for livemode in (False, True)
            for i in range(300)
        ]
        db.session.execute(insert(Dispute), disputes)
        db.session.add(PaymentAttempt(payment_id=paid.id, outcome="succeeded", psp_event_id="e1"))
        db.session.commit()
        db.session.execute(text("ANALYZE TABLE payments, refunds, disputes, payment_attempts"))
        db.session.remove()


def overview_plans(app, client, path: str) -> list[tuple[str, list[dict]]]:
    """(statement, EXPLAIN rows) of each figure query the overview at `path` runs."""
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "GROUP BY bucket" in statement:
            captured.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    raw = engine.raw_connection()
    try:
        plans = []
        for statement, parameters in captured:
            cursor = raw.cursor()
            cursor.execute("EXPLAIN " + statement, parameters)
            columns = [d[0] for d in cursor.description]
            plans.append(
                (statement, [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()])
            )
            cursor.close()
        return plans
    finally:
        raw.close()


@pytest.mark.parametrize(
    "path",
    ["/dashboard/?range=last_30_days", "/dashboard/?range=custom&from=2026-11-01&to=2026-12-07"],
)
def test_each_table_is_read_once_through_an_index_range(
    app, tenants, refunds_disputes_attempts, path
):
    client = logged_in(app, tenants.a_email)
    plans = overview_plans(app, client, path)
    # payments (volumes, rates, reasons, methods, and their attempts: the authorization rate),
    # refunds, disputes' funds withdrawn and reinstated: four, however many days the range has.
    assert len(plans) == 4, [s[:80] for s, _ in plans]
    read = set()
    for _statement, rows in plans:
        for row in rows:
            table = row["table"]
            if table in FIGURE_TABLES:
                # merchant_id (INT, 4 bytes) + livemode (1), then the time or the status.
                assert row["key"] and row["key"].startswith(f"ix_{table}_merchant_"), row
                assert int(row["key_len"]) >= 5, row  # merchant and mode at least
                if table == "payments":  # and the period (or a status): not the whole history
                    assert int(row["key_len"]) > 5, row
                assert row["type"] in ("range", "ref"), row
                read.add(table)
            elif table == "payment_attempts":  # a payment's attempts, by payment
                assert row["key"] == "ix_payment_attempts_payment", row
                assert row["type"] == "ref", row
            else:
                assert row["table"].startswith("<"), row  # MariaDB's derived tables only
            assert "filesort" not in (row["Extra"] or ""), row
    assert read == set(FIGURE_TABLES)
