"""The pump's fan-out: the request path writes only the notification; the worker gives each new
one its deliveries, once, in id order, whatever number of pumps run, and loses none when it
dies midway."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.extensions import db
from app.models import Notification, NotificationDelivery, Payment, PaymentStatus
from app.notifications import fanout
from app.notifications.fanout import fan_out
from app.notifications.outbox import add_payment_notification
from app.notifications.pump import NotificationPump
from tests.support.concurrency import at_once
from tests.support.factories import add_endpoint, make_payment
from tests.support.receiver import Receiver
from tests.support.waiting import wait_until


@pytest.fixture
def second_receiver():
    r = Receiver().start()
    yield r
    r.stop()


def _merchant(app, make_merchant, url: str):
    """A merchant whose one endpoint receives every type."""
    merchant, _ = make_merchant(notify_url=None)
    with app.app_context():
        add_endpoint(merchant.id, url, ["*"])
        db.session.commit()
    return merchant


def _notifications(app, merchant_id: int, payments: int, each: int) -> list[int]:
    """`each` more notifications of every one of `payments` payments, interleaved (payment 1's
    first, payment 2's first, …), committed one by one as status changes are: the ids of all
    the merchant's notifications (the payments' own too)."""
    refs = [
        make_payment(app, merchant_id, PaymentStatus.SUCCESS if i % 2 else PaymentStatus.INITIATED)
        for i in range(payments)
    ]
    for _ in range(each):
        for ref in refs:
            with app.app_context():
                add_payment_notification(db.session.get(Payment, ref.id))
                db.session.commit()
    with app.app_context():
        mine = db.select(Notification.id).where(Notification.merchant_id == merchant_id)
        return list(db.session.scalars(mine))


def _deliveries(app) -> list[NotificationDelivery]:
    with app.app_context():
        rows = db.session.scalars(db.select(NotificationDelivery)).all()
        db.session.expunge_all()
        return list(rows)


def test_concurrent_fan_outs_give_each_notification_its_deliveries_once_in_order(
    app, make_merchant, receiver, second_receiver
):
    merchant = _merchant(app, make_merchant, receiver.url)
    with app.app_context():
        succeeded_only = add_endpoint(merchant.id, second_receiver.url, ["payment.succeeded"]).id
        db.session.commit()
    ids = _notifications(app, merchant.id, payments=4, each=6)
    with app.app_context():
        new = db.session.scalars(db.select(Notification.status).where(Notification.id.in_(ids)))
        assert set(new) == {"new"}  # the request path wrote no delivery
    assert _deliveries(app) == []

    def one_pump() -> int:  # small batches, so that the four take turns many times
        made = 0
        with app.app_context():
            while done := fan_out(limit=3):
                made += done
        return made

    assert sum(at_once([one_pump] * 4, timeout=60)) == len(ids)  # each fanned out once

    with app.app_context():
        rows = db.session.scalars(db.select(Notification).where(Notification.id.in_(ids)))
        notifications = {n.id: n for n in rows}
        assert {n.status for n in notifications.values()} == {"pending"}
        assert all(n.next_attempt_at is not None for n in notifications.values())
        deliveries = _deliveries(app)
        succeeded = {i for i, n in notifications.items() if n.event_type == "payment.succeeded"}
        # One delivery per receiving endpoint: all of them to the first, the succeeded ones to
        # the second, none twice.
        pairs = [(d.notification_id, d.endpoint_id) for d in deliveries]
        assert len(pairs) == len(set(pairs)) == len(ids) + len(succeeded)
        assert {n for n, e in pairs if e == succeeded_only} == succeeded
        # Per (endpoint, payment), delivery ids follow notification ids: the claim's order.
        by_pair: dict[tuple[int, int], list[NotificationDelivery]] = {}
        for d in deliveries:
            by_pair.setdefault((d.endpoint_id, d.payment_id), []).append(d)
        for rows in by_pair.values():
            by_id = sorted(rows, key=lambda d: d.id)
            assert [d.notification_id for d in by_id] == sorted(d.notification_id for d in rows)


def test_a_fan_out_that_dies_midway_leaves_its_notifications_new_for_the_next(
    app, make_merchant, receiver, monkeypatch
):
    merchant = _merchant(app, make_merchant, receiver.url)
    ids = _notifications(app, merchant.id, payments=2, each=2)
    # The deliveries are written, then the transaction fails before it moves the
    # notifications on (as a worker killed there: its transaction is rolled back).
    monkeypatch.setattr(fanout, "_MOVE_ON", text("UPDATE notifications SET no_such_column = 1"))
    with app.app_context(), pytest.raises(Exception, match="no_such_column"):
        fan_out()
    assert _deliveries(app) == []
    with app.app_context():
        statuses = db.select(Notification.status).where(Notification.id.in_(ids))
        assert set(db.session.scalars(statuses)) == {"new"}

    monkeypatch.undo()
    with app.app_context():
        assert fan_out() == len(ids)
        assert fan_out() == 0
    assert sorted(d.notification_id for d in _deliveries(app)) == sorted(ids)


def test_two_pumps_deliver_every_notification_once_and_in_order_per_payment(
    app, make_merchant, receiver, notify_config
):
    receiver.delay = 0.02  # keeps POSTs in flight while the other pump fans out and claims
    merchant = _merchant(app, make_merchant, receiver.url)
    ids = _notifications(app, merchant.id, payments=5, each=4)
    with app.app_context():
        msg_ids = dict(
            db.session.execute(
                db.select(Notification.public_id, Notification.id).where(Notification.id.in_(ids))
            ).all()
        )
    pumps = [NotificationPump(app, concurrency=4) for _ in range(2)]
    for p in pumps:
        p.start()
    try:
        wait_until(lambda: len(receiver.requests) >= len(ids), what="every delivery", timeout=60)
    finally:
        for p in pumps:
            p.stop(timeout=10)

    received = [r.headers["webhook-id"] for r in receiver.requests]
    assert sorted(received) == sorted(msg_ids)  # each exactly once
    per_payment: dict[str, list[int]] = {}
    for r in receiver.requests:
        per_payment.setdefault(r.json()["data"]["id"], []).append(msg_ids[r.headers["webhook-id"]])
    assert len(per_payment) == 5
    assert all(got == sorted(got) for got in per_payment.values())  # in order per payment
