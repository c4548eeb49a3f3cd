"""The delivery log is read from an index on MariaDB: the page's statement, EXPLAINed against
thousands of events (each with a delivery) of two merchants in both modes, walks a notifications
index that leads with the merchant and the mode (0021), or for an operator with the mode (0025),
in (created_at, id) order with no filesort, and checks each event's deliveries by index; the
bulk redelivery's count reads an endpoint's failed deliveries from 0025's index."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, insert, select, text

from app.extensions import db
from app.models import Notification, NotificationDelivery, NotificationEndpoint, utcnow
from app.notifications.redelivery import FailedWindow, _failed_in
from tests.support.pages import logged_in

TYPES = ("payment.succeeded", "payment.failed", "refund.succeeded", "dispute.created")


@pytest.fixture
def many_deliveries(app, tenants):
    start = utcnow() - timedelta(days=2)
    with app.app_context():
        endpoints = {}
        for merchant_id in (tenants.a_id, tenants.b_id):
            for livemode in (False, True):
                endpoint = NotificationEndpoint(
                    merchant_id=merchant_id,
                    livemode=livemode,
                    url="https://shop.example/hooks",
                    event_types=["*"],
                )
                db.session.add(endpoint)
                db.session.flush()
                endpoints[merchant_id, livemode] = endpoint.id
        rows = [
            {
                "public_id": f"msg_log_{merchant_id}_{int(livemode)}_{i:06d}",
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
        for (merchant_id, livemode), endpoint_id in endpoints.items():
            # One delivery each; every tenth failed.
            db.session.execute(
                text(
                    "INSERT INTO notification_deliveries (notification_id, endpoint_id, status,"
                    " attempt_count, created_at, updated_at)"
                    " SELECT id, :endpoint_id, IF(id % 10 = 0, 'failed', 'delivered'), 1,"
                    " created_at, created_at FROM notifications"
                    " WHERE merchant_id = :merchant_id AND livemode = :livemode"
                ),
                {"endpoint_id": endpoint_id, "merchant_id": merchant_id, "livemode": livemode},
            )
        db.session.commit()
        db.session.execute(text("ANALYZE TABLE notifications, notification_deliveries"))
        db.session.remove()
    return endpoints


def _explain(engine, statement, parameters) -> list[dict]:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN " + statement, parameters)
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    finally:
        raw.close()


def log_plan(app, client, query: str) -> list[dict]:
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
        assert client.get("/dashboard/deliveries" + query).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    [(statement, parameters)] = captured
    return _explain(engine, statement, parameters)


@pytest.mark.parametrize(
    ("who", "query", "index"),
    [
        ("merchant", "", "ix_notifications_merchant_mode_created"),
        ("merchant", "?status=failed", "ix_notifications_merchant_mode_created"),
        ("merchant", "?event_type=payment.failed", "ix_notifications_merchant_mode_type_created"),
        ("merchant", "?created_gte=2000-01-01T00:00", "ix_notifications_merchant_mode_created"),
        ("operator", "", "ix_notifications_livemode_created"),
    ],
)
def test_the_log_reads_an_index_in_order(app, tenants, many_deliveries, who, query, index):
    client = logged_in(app, tenants.a_email if who == "merchant" else tenants.op_email)
    plan = log_plan(app, client, query)
    events = next(row for row in plan if row["table"] == "notifications")
    assert events["key"] == index, plan
    assert all("filesort" not in (row["Extra"] or "") for row in plan), plan
    deliveries = [row for row in plan if row["table"] == "notification_deliveries"]
    assert deliveries and all(row["key"] for row in deliveries), plan  # by index, not a scan


def test_the_bulk_count_reads_the_endpoints_failed_deliveries_by_index(
    app, tenants, many_deliveries
):
    endpoint_id = many_deliveries[tenants.b_id, False]
    with app.app_context():
        stmt = _failed_in(
            FailedWindow(endpoint_id, created_gte=utcnow() - timedelta(days=3)),
            NotificationDelivery.id,
        )
        compiled = stmt.compile(db.engine)
        plan = _explain(db.engine, str(compiled), compiled.params)
        count = db.session.scalar(select(db.func.count()).select_from(stmt.subquery()))
    assert count == 300  # every tenth of 3000
    deliveries = next(row for row in plan if row["table"] == "notification_deliveries")
    assert deliveries["key"] == "ix_notification_deliveries_endpoint_status", plan
    assert deliveries["type"] in ("ref", "range"), plan
