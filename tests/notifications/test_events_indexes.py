"""GET /api/v1/events reads an index on MariaDB: the statement it really runs, EXPLAINed against
thousands of notifications of two merchants in both modes, walks a notifications index in
(created_at, id) order (0021_notification_events) with no filesort, so LIMIT stops after a page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, insert, text

from app.extensions import db
from app.models import Notification, utcnow
from tests.support.api import auth_headers

# The notifications are inserted as rows with stub payloads: only the plans are asserted.
pytestmark = pytest.mark.synthetic_rows

TYPES = ("payment.succeeded", "payment.failed", "refund.succeeded", "dispute.created")


@pytest.fixture
def many_events(app, tenants):
    start = utcnow() - timedelta(days=2)
    with app.app_context():
        rows = [
            {
                "public_id": f"msg_many_{merchant_id}_{int(livemode)}_{i:06d}",
                "merchant_id": merchant_id,
                "livemode": livemode,
                "event_type": TYPES[i % len(TYPES)],
                "payload": {"type": TYPES[i % len(TYPES)], "data": {}},
                "status": "delivered",
                "attempt_count": 1,
                "created_at": start + timedelta(seconds=i),
                "updated_at": start + timedelta(seconds=i),
            }
            for merchant_id, count in ((tenants.a_id, 1500), (tenants.b_id, 3000))
            for livemode in (False, True)
            for i in range(count)
        ]
        db.session.execute(insert(Notification), rows)
        db.session.commit()
        db.session.execute(text("ANALYZE TABLE notifications"))
        db.session.remove()


def events_plan(app, client, query: str, key: str) -> list[dict]:
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "FROM notifications" in statement and "ORDER BY notifications.created_at DESC" in (
            statement
        ):
            captured.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        answer = client.get("/api/v1/events" + query, headers=auth_headers(key))
        assert answer.status_code == 200, answer.get_json()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    [(statement, parameters)] = captured
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN " + statement, parameters)
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    finally:
        raw.close()


@pytest.mark.parametrize(
    ("query", "index"),
    [
        ("", "ix_notifications_merchant_mode_created"),
        ("?created_gte=2000-01-01T00:00:00Z", "ix_notifications_merchant_mode_created"),
        ("?type=payment.failed", "ix_notifications_merchant_mode_type_created"),
    ],
)
def test_the_events_list_reads_an_index_in_order(app, tenants, many_events, query, index):
    client = app.test_client()
    [plan] = events_plan(app, client, query, tenants.a_key)
    assert plan["key"] == index, plan
    assert "filesort" not in (plan["Extra"] or ""), plan
