"""The outbox and its pump: only committed rows are sent, each attempt once, with or without
Redis; claims are leased, so a pump that dies loses nothing; stopping is warm."""

from __future__ import annotations

import time
from concurrent.futures import Future
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import (
    Notification,
    NotificationAttempt,
    NotificationDelivery,
    NotificationEndpoint,
    Payment,
    PaymentStatus,
    StatusSource,
    utcnow,
)
from app.notifications.delivery import (
    AttemptResult,
    Claim,
    claim_due,
    deliver_due,
    record_outcomes,
)
from app.notifications.endpoints import disable, update_endpoint
from app.notifications.pump import NotificationPump
from app.notifications.redelivery import queue_again
from app.payments.state import lock_payment, transition
from tests.support.factories import FINAL_NEWS, record_payment
from tests.support.rows import get_row, get_rows
from tests.support.waiting import wait_until


def cycle_in_another_session(app) -> int:
    """One delivery cycle as another process would run it: its own connection, own snapshot."""
    with app.app_context():
        return deliver_due()


@pytest.fixture
def pump(app, notify_config):
    """Start a real NotificationPump in this process; every one started is stopped afterwards."""
    started: list[NotificationPump] = []

    def start(concurrency: int = 4) -> NotificationPump:
        p = NotificationPump(app, concurrency=concurrency)
        p.start()
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop(timeout=10)


def test_nothing_is_sent_before_the_commit_nor_after_a_rollback(
    app, make_merchant, receiver, notify_config
):
    merchant, _ = make_merchant(notify_url=receiver.url)
    with app.app_context():
        payment_id = record_payment(merchant.id, amount=2500).id
        db.session.commit()
        payment = lock_payment(payment_id)
        transition(payment, PaymentStatus.SUCCESS, source=StatusSource.WEBHOOK)
        db.session.flush()
        assert db.session.scalar(db.select(db.func.count(Notification.id)).where(FINAL_NEWS)) == 1
        assert deliver_due() == 0  # flushed, not committed: no other connection sees it
        db.session.rollback()
        assert deliver_due() == 0

        payment = lock_payment(payment_id)
        transition(payment, PaymentStatus.SUCCESS, source=StatusSource.WEBHOOK)
        db.session.commit()
        notification_id = db.session.scalar(db.select(Notification.id).where(FINAL_NEWS))
    assert cycle_in_another_session(app) == 1
    assert get_row(app, Notification, notification_id).status == "delivered"
    assert receiver.hits == 1


def test_redis_down_while_a_payment_completes_delays_nothing(
    app, make_merchant, receiver, finish_payment, worker
):
    merchant, _ = make_merchant(notify_url=receiver.url)
    saved = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nobody listens there
    app.extensions.pop("paybridge_redis", None)
    try:
        payment_id, notification_id = finish_payment(merchant.id)
        with app.app_context():
            assert db.session.get(Payment, payment_id).status == "SUCCESS"
        assert worker.run_once() == 1
    finally:
        app.config["REDIS_URL"] = saved
        app.extensions.pop("paybridge_redis", None)
    assert get_row(app, Notification, notification_id).status == "delivered"
    assert len(receiver.requests) == 1


def test_a_claim_is_leased_and_a_dead_pumps_claim_is_taken_again(
    app, make_merchant, receiver, finish_payment, worker
):
    merchant, _ = make_merchant(notify_url=receiver.url)
    _, notification_id = finish_payment(merchant.id)
    worker.fan_out()
    with app.app_context():
        [lost] = claim_due(10)  # a pump claims it, then dies before it POSTs
        assert claim_due(10) == []  # leased: no other cycle takes it meanwhile
        assert deliver_due() == 0
        claimed = db.session.get(NotificationDelivery, lost.delivery_id)
        assert claimed.notification_id == notification_id
        # Leased from the claim for the POST's timeout and a margin (both read from the row: a
        # comparison with the clock now would shrink by however long the lines above took).
        lease = timedelta(seconds=app.config["NOTIFY_TIMEOUT_SECONDS"] + 30)
        assert claimed.next_attempt_at - claimed.last_attempt_at == lease
        db.session.execute(
            db.update(NotificationDelivery)
            .where(NotificationDelivery.id == lost.delivery_id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))  # the lease ran out
        )
        db.session.commit()
    assert worker.run_once() == 1
    assert get_row(app, Notification, notification_id).status == "delivered"

    with app.app_context():
        # The dead pump's outcome, should it turn up after all, changes nothing.
        record_outcomes([(lost, AttemptResult(False, 500, "HTTP 500", 3))])
    n = get_row(app, Notification, notification_id)
    assert (n.status, n.attempt_count, n.last_error) == ("delivered", 1, None)
    assert len(receiver.requests) == 1


def test_delivered_outcomes_of_one_claim_move_on_together_but_only_those_it_still_holds(
    app, make_merchant, receiver, finish_payment, worker
):
    """Delivered outcomes are stored in one statement per claim; a delivery the claim lost
    meanwhile (its lease ran out and another cycle took it) is left to the new claim."""
    merchant, _ = make_merchant(notify_url=receiver.url)
    _, kept_id = finish_payment(merchant.id)
    _, lost_id = finish_payment(merchant.id)
    worker.fan_out()
    with app.app_context():
        claims = {c.notification_id: c for c in claim_due(10)}
        assert set(claims) == {kept_id, lost_id}  # one claim, one claimed_at
        db.session.execute(
            db.update(NotificationDelivery)
            .where(NotificationDelivery.id == claims[lost_id].delivery_id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))  # its lease ran out
        )
        db.session.commit()
        [retaken] = claim_due(10)  # another cycle takes it over
        assert retaken.notification_id == lost_id
        ok = AttemptResult(True, 200, None, 3)
        record_outcomes([(claims[kept_id], ok), (claims[lost_id], ok)])
    kept, lost = get_row(app, Notification, kept_id), get_row(app, Notification, lost_id)
    assert (kept.status, kept.attempt_count) == ("delivered", 1)
    assert (lost.status, lost.attempt_count) == ("pending", 0)  # the new claim's to record
    with app.app_context():
        record_outcomes([(retaken, ok)])
    lost = get_row(app, Notification, lost_id)
    assert (lost.status, lost.attempt_count) == ("delivered", 1)


def test_an_outcome_from_before_a_redelivery_does_not_move_the_redelivery_on(
    app, make_merchant, receiver, finish_payment, worker
):
    """A POST out when its endpoint was disabled, then enabled and the delivery redelivered:
    its late outcome must not count as the redelivery's."""
    merchant, _ = make_merchant(notify_url=receiver.url)
    _, notification_id = finish_payment(merchant.id)
    worker.fan_out()
    with app.app_context():
        [stale] = claim_due(10)
        endpoint = db.session.get(NotificationEndpoint, stale.endpoint_id)
        disable(endpoint, "merchant")  # its pending delivery fails, the POST still out
        db.session.commit()
        update_endpoint(endpoint, {"disabled": False}, allowed_networks=["127.0.0.0/8"])
        queue_again(endpoint.id, [notification_id])
        db.session.commit()
        record_outcomes([(stale, AttemptResult(True, 200, None, 3))])
        delivery = db.session.get(NotificationDelivery, stale.delivery_id)
        assert (delivery.status, delivery.attempt_count) == ("pending", 0)  # still to send
    assert worker.run_once() == 1
    assert get_row(app, Notification, notification_id).status == "delivered"
    assert len(receiver.requests) == 1


def test_without_an_endpoint_a_notification_is_unrouted_and_never_attempted(
    app, make_merchant, finish_payment, worker
):
    merchant, _ = make_merchant(notify_url=None)
    _, notification_id = finish_payment(merchant.id)
    assert worker.fan_out() >= 1
    n = get_row(app, Notification, notification_id)
    assert (n.status, n.attempt_count, n.next_attempt_at) == ("unrouted", 0, None)
    assert worker.run_once() == 0
    assert get_rows(app, NotificationAttempt, notification_id=notification_id) == []


def test_the_pump_delivers_concurrently_in_one_claim(
    app, make_merchant, receiver, finish_payment, pump, monkeypatch
):
    # An endpoint not heard from yet gets its fair share in a claim: here, the whole pump.
    monkeypatch.setitem(app.config, "NOTIFY_ENDPOINT_CONCURRENCY", 6)
    receiver.delay = 0.4
    merchant, _ = make_merchant(notify_url=receiver.url)
    ids = [finish_payment(merchant.id)[1] for _ in range(6)]
    pump(concurrency=6)
    wait_until(
        lambda: all(db.session.get(Notification, i).status == "delivered" for i in ids),
        what="six deliveries",
        timeout=15,
        app=app,
    )
    assert receiver.max_in_flight == 6
    # One claim took all six: they share the claim's time.
    attempts = [get_rows(app, NotificationAttempt, notification_id=i) for i in ids]
    assert len({first.attempted_at for first, *_ in attempts}) == 1


def test_the_pump_claims_the_next_delivery_when_a_post_comes_back_not_a_poll_later(
    app, make_merchant, receiver, finish_payment, pump, monkeypatch
):
    """A POST that outlasts the poll: the claim after that poll finds every slot taken, then
    the POST comes back. The freed slot is claimed at once; the pump does not sleep a poll
    with a delivery due (it used to: nothing claimed and nothing left in flight looked idle)."""
    poll = 1.5
    monkeypatch.setitem(app.config, "NOTIFY_POLL_SECONDS", poll)
    receiver.delay = poll + 0.3
    merchant, _ = make_merchant(notify_url=receiver.url)
    for _ in range(2):
        finish_payment(merchant.id)
    pump(concurrency=1)
    wait_until(lambda: receiver.hits == 2, what="the second POST", timeout=15)
    # Between the first POST's answer and the second POST: a claim and a record, not a poll.
    gap = receiver.arrived_at[1] - receiver.arrived_at[0] - receiver.delay
    assert gap < poll / 2, gap


def test_a_post_that_came_back_but_is_not_collected_yet_does_not_make_its_endpoint_slow(
    app, notify_config
):
    """A fast endpoint is seen slow by a POST still out after a quarter of the timeout, not by
    one that finished while the pump's thread was busy (a loaded database): that one is judged
    by its own duration once collected. Otherwise a lagging pump cut every fast endpoint down
    to its share."""
    p = NotificationPump(app, concurrency=8)  # not started: `_room` is called by hand
    long_ago = time.monotonic() - 2 * p.fast_seconds
    fast_endpoint, hanging_endpoint = 7, 8
    p._fast.update({fast_endpoint: True, hanging_endpoint: True})
    for delivery_id, endpoint_id in ((1, fast_endpoint), (2, hanging_endpoint)):
        future: Future = Future()
        if endpoint_id == fast_endpoint:
            future.set_result(AttemptResult(True, 200, None, 5))  # back, not collected yet
        claim = Claim(
            delivery_id, delivery_id, endpoint_id, 0, "msg_x", {}, "http://x", (), utcnow()
        )
        p._in_flight[future] = claim
        p._started[delivery_id] = long_ago
    room = p._room()
    assert room[fast_endpoint] == p.concurrency  # still fast: may borrow every free slot
    assert room[hanging_endpoint] == p.endpoint_share - 1  # out too long: its share only


def test_the_pump_reuses_the_connection_and_sends_back_no_cookies(
    app, make_merchant, receiver, finish_payment, pump
):
    receiver.extra_headers = {"Set-Cookie": "session=client-app-secret; Path=/"}
    merchant, _ = make_merchant(notify_url=receiver.url)
    pump(concurrency=1)
    for _ in range(3):
        finish_payment(merchant.id)
    requests = receiver.wait_for(3)
    # One keep-alive connection carried all three: no TCP (or TLS) handshake per notification.
    assert len({r.client_port for r in requests}) == 1
    # What one client app's server sets is never sent back (to it or to any other).
    assert all("Cookie" not in r.headers for r in requests)


def test_stopping_the_pump_lets_the_posts_in_flight_finish_and_records_them(
    app, make_merchant, receiver, finish_payment, pump
):
    receiver.delay = 1.0
    merchant, _ = make_merchant(notify_url=receiver.url)
    ids = [finish_payment(merchant.id)[1] for _ in range(3)]
    running = pump(concurrency=3)
    wait_until(lambda: receiver.in_flight == 3, what="three POSTs in flight", timeout=15)
    running.stop(timeout=10)
    assert not running.is_alive()
    for notification_id in ids:
        n = get_row(app, Notification, notification_id)
        assert (n.status, n.attempt_count) == ("delivered", 1)
    assert len(receiver.requests) == 3
