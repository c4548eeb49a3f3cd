"""Fair delivery against real receivers: a hanging endpoint holds only its share of the pump
and does not slow another endpoint's deliveries; one that answers fast borrows the whole pump,
and gives it back soon after it starts hanging."""

from __future__ import annotations

import time

import pytest

from app.extensions import db
from app.models import Notification, utcnow
from app.models.base import public_id
from app.notifications.fanout import fan_out_all
from app.notifications.pump import NotificationPump
from tests.support.factories import add_endpoint
from tests.support.receiver import Receiver
from tests.support.waiting import wait_until

CONCURRENCY = 32
SHARE = 2  # NOTIFY_ENDPOINT_CONCURRENCY
TIMEOUT = 2.0


@pytest.fixture
def fair_config(app, notify_config, monkeypatch):
    monkeypatch.setitem(app.config, "NOTIFY_ENDPOINT_CONCURRENCY", SHARE)
    notify_config.update(NOTIFY_TIMEOUT_SECONDS=TIMEOUT)
    return notify_config


@pytest.fixture
def hanging():
    """A client app that never answers within the timeout."""
    r = Receiver(delay=TIMEOUT + 0.05).start()
    yield r
    r.stop()


@pytest.fixture
def healthy():
    r = Receiver().start()
    yield r
    r.stop()


def _backlog(app, make_merchant, url: str, n: int) -> int:
    """A merchant whose one endpoint (every type) at `url` has `n` notifications due (payment-
    less: no order between them holds any back), fanned out: its endpoint's id."""
    merchant, _ = make_merchant(notify_url=None)
    with app.app_context():
        endpoint_id = add_endpoint(merchant.id, url, ["*"]).id
        now = utcnow()
        rows = []
        for _ in range(n):
            msg = public_id("msg_")
            rows.append(
                {
                    "public_id": msg,
                    "merchant_id": merchant.id,
                    "event_type": "payment.succeeded",
                    "payload": {"id": msg, "type": "payment.succeeded", "data": {}},
                    "status": "new",
                    "next_attempt_at": None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        db.session.execute(db.insert(Notification.__table__), rows)
        db.session.commit()
        fan_out_all()
    return endpoint_id


@pytest.fixture
def pump(app):
    started: list[NotificationPump] = []

    def start() -> NotificationPump:
        p = NotificationPump(app, concurrency=CONCURRENCY)
        p.start()
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop(timeout=10)


def test_a_hanging_endpoint_does_not_slow_another_and_still_gets_its_turns(
    app, make_merchant, healthy, hanging, fair_config, pump
):
    """One pump run, counted in the same run: the healthy endpoint's deliveries per second
    while the hanging one's POSTs are in flight, against those while none is (its retries
    leave gaps: in flight 2 s, then 3 s waiting, three times)."""
    fair_config["NOTIFY_RETRY_SCHEDULE"] = [3, 3]
    total = 12000  # more than the healthy endpoint gets through while the hanging one lasts
    _backlog(app, make_merchant, healthy.url, total)
    hanging_notifications = SHARE  # its share at once, three times
    hanging_id = _backlog(app, make_merchant, hanging.url, hanging_notifications)

    running = pump()
    samples: list[tuple[float, int, int]] = []  # (time, healthy delivered, hanging in flight)
    deadline = time.monotonic() + 60
    attempts_expected = hanging_notifications * 3
    while hanging.hits < attempts_expected or running.in_flight()[hanging_id]:
        assert time.monotonic() < deadline, "the hanging endpoint did not get its turns"
        samples.append((time.monotonic(), len(healthy.requests), running.in_flight()[hanging_id]))
        time.sleep(0.02)  # the sampling period of the measurement, not a wait for a result
    assert len(healthy.requests) < total, "the healthy backlog ran out: make it larger"

    rate = {True: [0.0, 0], False: [0.0, 0]}  # hanging in flight -> [seconds, deliveries]
    for (t0, n0, h0), (t1, n1, h1) in zip(samples, samples[1:], strict=False):
        if n0 < 20 or bool(h0) != bool(h1):
            continue  # warming up, or the phase changed within the interval
        rate[bool(h0)][0] += t1 - t0
        rate[bool(h0)][1] += n1 - n0
    with_hanging = rate[True][1] / rate[True][0]
    without = rate[False][1] / rate[False][0]
    assert rate[True][0] > 1.5 and rate[False][0] > 1.5  # both phases were measured
    print(f"healthy deliveries/s: {with_hanging:.1f} with the hanging one, {without:.1f} without")
    assert with_hanging >= 0.9 * without, (with_hanging, without)

    # The hanging endpoint had its turns, never more than its share at once.
    assert hanging.hits == attempts_expected
    assert max(h for _, _, h in samples) == SHARE
    wait_until(
        lambda: (
            db.session.scalar(db.select(db.func.count()).where(Notification.status == "failed"))
            == hanging_notifications
        ),
        what="the hanging endpoint's notifications failed after their retries",
        app=app,
    )


def test_a_hanging_endpoint_with_a_backlog_holds_only_its_share(
    app, make_merchant, hanging, fair_config, pump
):
    hanging_id = _backlog(app, make_merchant, hanging.url, 8 * SHARE)
    running = pump()
    wait_until(lambda: hanging.in_flight == SHARE, what="its share of POSTs at the receiver")
    most = 0
    until = time.monotonic() + TIMEOUT  # the first POSTs' whole timeout
    while time.monotonic() < until:
        most = max(most, running.in_flight()[hanging_id], hanging.in_flight)
        time.sleep(0.02)  # the sampling period, not a wait for a result
    assert most == SHARE
    assert hanging.max_in_flight == SHARE


def test_an_endpoint_that_was_fast_and_then_hangs_gives_the_slots_back(
    app, make_merchant, healthy, fair_config, pump
):
    """It borrowed the pump while fast; once it hangs, its POSTs beyond its share stop holding
    slots as soon as it is seen slow (a quarter of the timeout), not when they time out."""
    timeout = 4.0
    fair_config.update(NOTIFY_TIMEOUT_SECONDS=timeout)
    flaky = Receiver().start()
    try:
        flaky_id = _backlog(app, make_merchant, flaky.url, 20 * CONCURRENCY)
        running = pump()
        wait_until(lambda: len(flaky.requests) >= 2 * CONCURRENCY, what="it borrowing the pump")
        flaky.delay = timeout + 0.5  # from now on it hangs
        wait_until(
            lambda: flaky.in_flight > CONCURRENCY // 2, what="its borrowed slots held hanging"
        )
        started = time.monotonic()
        _backlog(app, make_merchant, healthy.url, CONCURRENCY)
        wait_until(lambda: len(healthy.requests) == CONCURRENCY, what="the other endpoint served")
        waited = time.monotonic() - started
        print(f"the other endpoint was served in {waited:.2f}s (timeout {timeout:g}s)")
        assert waited < timeout / 2, waited  # the hanging POSTs were still out
        assert running.in_flight()[flaky_id] > SHARE  # its hanging POSTs, on spare threads
    finally:
        flaky.delay = 0
        flaky.stop()


def test_an_endpoint_that_answers_fast_borrows_the_whole_pump(
    app, make_merchant, healthy, fair_config, pump
):
    healthy.delay = 0.3  # fast, but long enough for the POSTs to overlap
    _backlog(app, make_merchant, healthy.url, 2 * CONCURRENCY)
    pump()
    wait_until(lambda: len(healthy.requests) == 2 * CONCURRENCY, what="every delivery", timeout=30)
    # Its share while not heard from, then the free slots once its first POSTs came back fast
    # (not all of them need overlap at the receiver on a loaded machine: half of them do).
    assert healthy.max_in_flight >= CONCURRENCY // 2 > SHARE


def test_every_endpoint_with_work_gets_its_turn_not_only_the_first_few(
    app, make_merchant, fair_config, monkeypatch
):
    """More endpoints with due work than one claim's room: shares go to the longest waiting
    first, so the last endpoint is served early, not after the others' backlogs ran out."""
    fair_config.update(NOTIFY_TIMEOUT_SECONDS=2.0)  # fast: under 0.5 s; these answer in 0.6 s
    receivers = [Receiver(delay=0.6).start() for _ in range(6)]
    try:
        for r in receivers:
            _backlog(app, make_merchant, r.url, 10)
        started = time.monotonic()
        first_seen: dict[int, float] = {}
        p = NotificationPump(app, concurrency=4)  # two endpoints' shares at a time
        p.start()
        try:
            while len(first_seen) < len(receivers):
                assert time.monotonic() - started < 20, "an endpoint never got a turn"
                for i, r in enumerate(receivers):
                    if r.hits and i not in first_seen:
                        first_seen[i] = time.monotonic() - started
                time.sleep(0.02)  # the sampling period, not a wait for a result
        finally:
            p.stop(timeout=10)
        # Served in arrival order, each endpoint's 10 would take ~3 s (0.6 s a wave of two):
        # the last one would wait ~6 s behind the first four. Rotating, all start in ~2 waves.
        print(f"first POST per endpoint after (s): {sorted(first_seen.values())}")
        assert max(first_seen.values()) < 3.5, first_seen
    finally:
        for r in receivers:
            r.delay = 0
            r.stop()
