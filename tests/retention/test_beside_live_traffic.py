"""A purge of many old rows running while payments are created and paid: no live transaction
ever waits on a lock (every lock wait on this database is watched for, and a wait over a
second would fail the live request), and everything the live path wrote is kept."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pymysql
import pytest
from sqlalchemy import event, insert, literal, select

from app.extensions import db
from app.models import (
    IdempotencyRecord,
    Notification,
    NotificationAttempt,
    Payment,
    PspEvent,
    utcnow,
)
from app.notifications.delivery import deliver_due
from app.retention.service import purge
from tests.conftest import MYSQL_HOST, MYSQL_PORT, MYSQL_USER, TEST_DATABASE
from tests.support.api import auth_headers, create_body
from tests.support.factories import PaymentRef, add_payment
from tests.support.rows import count_rows, get_row
from tests.webhooks.helpers import stripe_event_body, stripe_headers

OLD_EVENTS = 40_000
OLD_NOTIFICATIONS = 8_000
OLD_KEYS = 15_000


@pytest.fixture
def short_lock_waits(app):
    """Every connection of the app gives up on a row lock after 1 s (InnoDB's default: 50)."""

    def one_second(dbapi_connection, _record, _proxy) -> None:
        with dbapi_connection.cursor() as cur:
            cur.execute("SET SESSION innodb_lock_wait_timeout = 1")

    with app.app_context():
        engine = db.engine
    event.listen(engine, "checkout", one_second)
    yield
    event.remove(engine, "checkout", one_second)
    engine.dispose()  # no connection keeps the short wait into later tests


class LockWaitWatch:
    """Polls InnoDB for transactions of this database waiting on a lock, on its own thread."""

    QUERY = (  # the waiting statement, and what the transaction it waits for is running
        "SELECT t.trx_query, b.trx_query FROM information_schema.INNODB_TRX t "
        "JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
        "LEFT JOIN information_schema.INNODB_LOCK_WAITS w ON w.requesting_trx_id = t.trx_id "
        "LEFT JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id "
        "WHERE t.trx_state = 'LOCK WAIT' AND p.DB = %s"
    )

    def __init__(self) -> None:
        self.waits: list[tuple] = []
        self.polls = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, autocommit=True)
        try:
            with conn.cursor() as cur:
                while not self.stop.is_set():
                    cur.execute(self.QUERY, (TEST_DATABASE,))
                    self.waits.extend(cur.fetchall())
                    self.polls += 1
                    self.stop.wait(0.005)
        finally:
            conn.close()


def seed_old_rows(merchant_id: int) -> None:
    """Old rows of every kind, inserted in bulk."""
    old = utcnow() - timedelta(days=200)
    payment = add_payment(merchant_id, status="SUCCESS", created_at=old)
    db.session.flush()
    db.session.execute(
        insert(PspEvent),
        [
            {
                "event_id": f"evt_old_{i}",
                "event_type": "checkout.session.completed",
                "payment_id": payment.id,
                "payload": {"id": f"evt_old_{i}"},
                "received_at": old,
                "outcome": "applied",
            }
            for i in range(OLD_EVENTS)
        ],
    )
    db.session.execute(
        insert(Notification),
        [
            {
                "public_id": f"msg_old_{i}",
                "merchant_id": merchant_id,
                "payment_id": payment.id,
                "event_type": "payment.succeeded",
                "payload": {"type": "payment.succeeded"},
                "status": "delivered",
                "attempt_count": 1,
                "delivered_at": old,
                "created_at": old,
                "updated_at": old,
            }
            for i in range(OLD_NOTIFICATIONS)
        ],
    )
    db.session.execute(
        insert(NotificationAttempt).from_select(
            ["notification_id", "attempted_at", "status_code", "duration_ms"],
            select(Notification.id, literal(old), literal(200), literal(5)),
        )
    )
    db.session.execute(
        insert(IdempotencyRecord),
        [
            {
                "merchant_id": merchant_id,
                "idempotency_key": f"old-{i}",
                "method": "POST",
                "path": "/api/v1/payments",
                "request_fingerprint": "f" * 64,
                "state": "completed",
                "created_at": old,
                "updated_at": old,
            }
            for i in range(OLD_KEYS)
        ],
    )
    db.session.commit()


def create_and_pay(app, client, key: str, n: int) -> None:
    """The live path: an API create with an Idempotency-Key (a key record, a payment, its PSP
    registration), then Stripe's signed webhook paying it (an event, a status change, an
    outbox notification)."""
    created = client.post(
        "/api/v1/payments",
        json=create_body(merchant_reference=f"live-{n}"),
        headers=auth_headers(key, f"live-{n}"),
    )
    assert created.status_code == 201, created.get_json()
    payment = PaymentRef.of(get_row(app, Payment, public_id=created.get_json()["id"]))
    body = stripe_event_body("checkout.session.completed", payment)
    paid = client.post("/webhooks/stripe", data=body, headers=stripe_headers(body))
    assert paid.status_code == 200, paid.get_data(as_text=True)
    assert get_row(app, Payment, payment.id).status == "SUCCESS"


def test_a_big_purge_beside_creates_webhooks_and_deliveries_makes_no_one_wait(
    app, client, make_merchant, receiver, short_lock_waits, monkeypatch
):
    merchant, key = make_merchant(notify_url=receiver.url)
    with app.app_context():
        seed_old_rows(merchant.id)
    monkeypatch.setitem(app.config, "RETENTION_BATCH_SIZE", 500)
    monkeypatch.setitem(app.config, "RETENTION_BATCH_PAUSE_SECONDS", 0.01)
    reports, failures, delivered = [], [], []
    purging_done = threading.Event()

    def purging() -> None:
        try:
            with app.app_context():
                reports.append(purge())
        except BaseException as exc:  # reported in the test's thread below
            failures.append(exc)
        finally:
            purging_done.set()

    def delivering() -> None:
        """The worker's pump beside it: claims, POSTs, records attempts of live notifications."""
        try:
            with app.app_context():
                while not purging_done.is_set():
                    delivered.append(deliver_due())
                    purging_done.wait(0.05)
        except BaseException as exc:
            failures.append(exc)

    watch = LockWaitWatch()
    watch.thread.start()
    purge_thread = threading.Thread(target=purging)
    pump_thread = threading.Thread(target=delivering)
    purge_thread.start()
    pump_thread.start()
    live_during_purge = 0
    started = time.monotonic()
    try:
        while purge_thread.is_alive() and time.monotonic() - started < 300:
            create_and_pay(app, client, key, live_during_purge)
            live_during_purge += 1
    finally:
        purge_thread.join(300)
        pump_thread.join(60)
        watch.stop.set()
        watch.thread.join(10)

    assert not failures, failures
    assert live_during_purge >= 5, "the purge ended before the live path got going"
    assert watch.polls > 10
    assert watch.waits == []
    assert sum(delivered) > 0, "no notification was delivered while the purge ran"
    (report,) = reports
    assert report.rows["psp_events"] == OLD_EVENTS
    assert report.rows["notifications"] == OLD_NOTIFICATIONS
    assert report.rows["notification_attempts"] == OLD_NOTIFICATIONS
    assert report.rows["idempotency_keys"] == OLD_KEYS
    # Everything the live path wrote stays, and nothing old does.
    live = live_during_purge
    assert count_rows(app, Payment, Payment.merchant_reference.like("live-%")) == live
    assert count_rows(app, PspEvent) == live
    # Each live payment's two events: payment.initiated and payment.succeeded.
    assert count_rows(app, Notification) == 2 * live
    assert count_rows(app, IdempotencyRecord) == live
