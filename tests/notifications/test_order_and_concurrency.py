"""In order per payment, and never the same attempt twice, however many pumps run."""

from __future__ import annotations

from app.extensions import db
from app.models import Notification, NotificationAttempt, Payment
from app.notifications.delivery import deliver_due
from app.notifications.outbox import add_payment_notification
from tests.notifications.conftest import attempted, status_is
from tests.support.concurrency import at_once
from tests.support.rows import get_row, get_rows


def add_second_notification(app, payment_id: int) -> int:
    """Another notification of the same payment (as a refund's would be), committed."""
    with app.app_context():
        notification = add_payment_notification(db.session.get(Payment, payment_id))
        notification.event_type = "refund.succeeded"
        notification.payload = {**notification.payload, "type": "refund.succeeded"}
        db.session.commit()
        return notification.id


def test_a_newer_notification_waits_for_the_older_one_of_its_payment(
    app, make_merchant, receiver, finish_payment, worker
):
    receiver.status = 500
    merchant, _ = make_merchant(notify_url=receiver.url)
    payment_id, first = finish_payment(merchant.id)
    second = add_second_notification(app, payment_id)

    worker.run_until(attempted(app, first, 2), what="retries of the first")
    assert (
        get_rows(app, NotificationAttempt, notification_id=second) == []
    )  # never tried while the first is pending
    assert get_row(app, Notification, second).status == "pending"

    receiver.status = 200
    worker.run_until(status_is(app, second, "delivered"), what="second delivered")
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert ids == [
        get_row(app, Notification, first).public_id,
        get_row(app, Notification, second).public_id,
    ]


def test_a_failed_older_notification_releases_the_next(
    app, make_merchant, receiver, finish_payment, worker, notify_config
):
    notify_config["NOTIFY_RETRY_SCHEDULE"] = [1]
    receiver.status = 500
    merchant, _ = make_merchant(notify_url=receiver.url)
    payment_id, first = finish_payment(merchant.id)
    second = add_second_notification(app, payment_id)
    worker.run_until(status_is(app, first, "failed"), what="first failed")
    receiver.status = 200
    worker.run_until(status_is(app, second, "delivered"), what="second delivered")
    assert [r.headers["webhook-id"] for r in receiver.requests] == [
        get_row(app, Notification, second).public_id
    ]


def test_concurrent_delivery_cycles_send_each_attempt_once(
    app, make_merchant, receiver, finish_payment
):
    """Six cycles at once (as six worker processes' pumps) over twelve due notifications:
    each claim takes rows no other holds, so every notification is POSTed exactly once."""
    receiver.delay = 0.3  # keeps the first claims' POSTs in flight while the others claim
    merchant, _ = make_merchant(notify_url=receiver.url)
    ids = [finish_payment(merchant.id)[1] for _ in range(12)]

    def one_pump() -> int:
        with app.app_context():
            return deliver_due(limit=4)

    made = at_once([one_pump] * 6, timeout=20)
    assert sum(made) == 12 and max(made) <= 4
    assert receiver.hits == 12
    assert sorted(r.headers["webhook-id"] for r in receiver.requests) == sorted(
        get_row(app, Notification, i).public_id for i in ids
    )
    for notification_id in ids:
        assert len(get_rows(app, NotificationAttempt, notification_id=notification_id)) == 1
        n = get_row(app, Notification, notification_id)
        assert (n.status, n.attempt_count) == ("delivered", 1)
