"""The payments list costs the same few queries whatever its RECC rows: no query per row."""

from __future__ import annotations

from sqlalchemy import event

from app.extensions import db
from app.models.subscription import Subscription
from tests.support.api import auth_headers
from tests.support.factories import add_payment_row


def add_subscription_with_renewals(merchant_id: int, n: int, renewals: int) -> tuple[str, str]:
    recc = {"amount": 900, "payment_type": "RECC", "interval": "month", "interval_count": 1}
    first = add_payment_row(merchant_id, merchant_reference=f"sub-{n}", status="SUCCESS", **recc)
    db.session.flush()
    subscription = Subscription(
        merchant_id=merchant_id,
        first_payment_id=first.id,
        psp_subscription_id=f"sub_test_{n}",
        status="active",
        interval="month",
        amount=900,
        currency="EUR",
    )
    db.session.add(subscription)
    for r in range(1, renewals + 1):
        add_payment_row(
            merchant_id,
            merchant_reference=f"sub-{n}-r{r}",
            status="SUCCESS",
            parent_payment_id=first.id,
            **recc,
        )
    db.session.flush()
    return first.public_id, subscription.public_id


def count_queries(app, call):
    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        result = call()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return result, len(statements)


def test_list_links_every_recc_payment_to_its_subscription_in_constant_queries(
    app, client, make_merchant
):
    merchant, key = make_merchant()
    with app.app_context():
        first_a, sub_a = add_subscription_with_renewals(merchant.id, 1, renewals=1)
        add_subscription_with_renewals(merchant.id, 2, renewals=1)
        db.session.commit()

    client.get("/api/v1/payments?limit=1", headers=auth_headers(key))  # records key use
    small, small_queries = count_queries(
        app, lambda: client.get("/api/v1/payments?limit=2", headers=auth_headers(key))
    )
    with app.app_context():
        for n in range(3, 8):
            add_subscription_with_renewals(merchant.id, n, renewals=2)
        db.session.commit()
    large, large_queries = count_queries(
        app, lambda: client.get("/api/v1/payments?limit=20", headers=auth_headers(key))
    )

    assert small.status_code == large.status_code == 200
    rows = large.get_json()["data"]
    assert len(rows) == 19
    assert all(row["subscription_id"] for row in rows)
    renewals_of_a = [r for r in rows if r["parent_payment_id"] == first_a]
    assert len(renewals_of_a) == 1 and renewals_of_a[0]["subscription_id"] == sub_a
    assert large_queries == small_queries
