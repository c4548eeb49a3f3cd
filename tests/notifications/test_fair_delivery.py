"""Fair delivery against real receivers: a hanging endpoint holds only its share of the pump
and does not slow another endpoint's deliveries; one that answers fast borrows the whole pump,
and gives it back soon after it starts hanging."""

from __future__ import annotations

import statistics
import time

import pytest
from sqlalchemy import text

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
    """A client app that never answers within the timeout. It holds each POST a second past
    it: a sender thread a loaded machine let wait 50 ms got the answer in time once (the
    requests timeout counts from its read, not from the send). Less than the shortest retry
    wait past it, so its turns never overlap at the receiver."""
    r = Receiver(delay=TIMEOUT + 1.0).start()
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


def _lock_wait_seconds(app) -> float:
    """How long one of the pump's statements may wait for a row lock before it fails (and is
    tried again): the longest the database may hold the pump up at once."""
    with app.app_context():
        return float(db.session.scalar(text("SELECT @@innodb_lock_wait_timeout")))


def _windows(samples: list[tuple[float, int, bool]]) -> list[tuple[bool, float, int]]:
    """The run cut where the phase changes: (phase, seconds, deliveries) each, an interval
    across a change counting for neither side."""
    windows: list[list] = []
    for (t0, n0, p0), (t1, n1, p1) in zip(samples, samples[1:], strict=False):
        if p0 != p1:
            continue
        if not windows or windows[-1][0] != p0 or windows[-1][3] != t0:
            windows.append([p0, 0.0, 0, t0])
        windows[-1][1] += t1 - t0
        windows[-1][2] += n1 - n0
        windows[-1][3] = t1
    return [(phase, seconds, n) for phase, seconds, n, _ in windows]


def test_a_hanging_endpoint_does_not_slow_another_and_still_gets_its_turns(
    app, make_merchant, healthy, hanging, fair_config, pump
):
    """One pump run: the healthy endpoint's deliveries per second while the hanging one's POSTs
    are out (in flight for the timeout, then the schedule's wait, three times), each such window
    against the gaps beside it. So a machine that slows down for a while (the whole suite, other
    work) slows both sides of a comparison alike, and one stalled window cannot decide it."""
    schedule = [3, 3]
    fair_config["NOTIFY_RETRY_SCHEDULE"] = schedule
    total = 12000  # more than the healthy endpoint gets through while the hanging one lasts
    _backlog(app, make_merchant, healthy.url, total)
    hanging_id = _backlog(app, make_merchant, hanging.url, SHARE)  # its share at once
    turns = 1 + len(schedule)
    attempts_expected = SHARE * turns
    # Its turns take the timeout each and the schedule's waits: 12 s. Each turn may also wait
    # for the pump's steps on a loaded machine (a poll to see it due, a claim, a collect, a
    # record: 5 s), and once for a row lock another connection holds (the database's lock wait
    # timeout: the longest a statement of the pump may be held up before it is tried again).
    budget = turns * (TIMEOUT + 5) + sum(schedule) + _lock_wait_seconds(app)

    running = pump()
    deadline = time.monotonic() + budget
    samples: list[tuple[float, int, int]] = []  # (time, healthy delivered, hanging in pump)
    while hanging.hits < attempts_expected or running.in_flight()[hanging_id]:
        assert time.monotonic() < deadline, (
            f"the hanging endpoint did not get its turns in {budget:g}s: "
            f"{hanging.hits} of {attempts_expected} POSTs"
        )
        samples.append((time.monotonic(), len(healthy.requests), running.in_flight()[hanging_id]))
        time.sleep(0.02)  # the sampling period of the measurement, not a wait for a result
    assert len(healthy.requests) < total, "the healthy backlog ran out: make it larger"

    # Out from their arrival until their timeout (not the pump's count: that one also lasts
    # while the pump's thread is busy, which is no hanging POST holding anything up).
    def out(t: float) -> bool:
        return any(at <= t < at + TIMEOUT for at in hanging.arrived_at)

    windows = _windows([(t, n, out(t)) for t, n, _ in samples if n >= 20])
    ratios = []
    for i, (hanging_out, seconds, n) in enumerate(windows):
        beside = [w for w in windows[max(i - 1, 0) : i + 2] if not w[0]]
        if not hanging_out or seconds < TIMEOUT / 2 or not beside:
            continue  # a gap, or the first window cut short by the warm-up
        rate_beside = sum(w[2] for w in beside) / sum(w[1] for w in beside)
        ratios.append(n / seconds / rate_beside)
    print(f"healthy deliveries/s while the hanging POSTs were out, against beside: {ratios}")
    assert len(ratios) >= turns - 1, windows  # its turns were measured
    # A pump that blocked the healthy endpoint while the hanging POSTs are out delivers next to
    # nothing then; half the rate beside is what one that held it up for half of that time
    # would show. Loaded runs (load average 8 on 2 cores) measured 0.56 to 1.4 as medians.
    assert statistics.median(ratios) >= 0.5, (ratios, windows)

    # The hanging endpoint had its turns, never more than its share at once.
    assert hanging.hits == attempts_expected
    assert max(in_pump for *_, in_pump in samples) == SHARE
    assert hanging.max_in_flight == SHARE
    wait_until(
        lambda: (
            db.session.scalar(db.select(db.func.count()).where(Notification.status == "failed"))
            == SHARE
        ),
        what="the hanging endpoint's notifications failed after their retries",
        app=app,
    )


def test_a_hanging_endpoint_with_a_backlog_holds_only_its_share(
    app, make_merchant, hanging, fair_config, pump
):
    hanging_id = _backlog(app, make_merchant, hanging.url, 8 * SHARE)
    running = pump()
    wait_until(lambda: hanging.hits >= SHARE, what="its share of POSTs at the receiver")
    deadline = time.monotonic() + TIMEOUT + 10  # their timeout, and a loaded pump's collect
    most = 0
    while running.in_flight()[hanging_id] == SHARE:  # until they time out and are collected
        assert time.monotonic() < deadline, "the hanging POSTs never came back"
        most = max(most, running.in_flight()[hanging_id])
        time.sleep(0.02)  # the sampling period, not a wait for a result
    assert most == SHARE
    # Nothing more went out while they hung (less what a POST's arrival may lag its start on a
    # loaded machine), though 14 more were due all along.
    first = hanging.arrived_at[0]
    assert all(at >= first + 0.75 * TIMEOUT for at in hanging.arrived_at[SHARE:])


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
        hanging_from = len(flaky.arrived_at)
        wait_until(
            lambda: flaky.in_flight > CONCURRENCY // 2, what="its borrowed slots held hanging"
        )
        _backlog(app, make_merchant, healthy.url, CONCURRENCY)
        due = time.monotonic()
        wait_until(lambda: len(healthy.requests) == CONCURRENCY, what="the other endpoint served")
        served = time.monotonic()
        first_hung = flaky.arrived_at[hanging_from]
        print(
            f"the other endpoint was served {served - due:.2f}s after it was due,"
            f" {served - first_hung:.2f}s after the first hanging POST (timeout {timeout:g}s)"
        )
        # Before the first of the hanging POSTs timed out: no slot came back by a timeout.
        assert served < first_hung + timeout, served - first_hung
        assert running.in_flight()[flaky_id] > SHARE  # its hanging POSTs, on spare threads
    finally:
        flaky.delay = 0
        flaky.stop()


def test_an_endpoint_that_answers_fast_borrows_the_whole_pump(
    app, make_merchant, healthy, fair_config, pump
):
    # Fast (under a quarter of the timeout, with room for a loaded machine's own delays), but
    # long enough for the POSTs to overlap.
    fair_config.update(NOTIFY_TIMEOUT_SECONDS=8.0)
    healthy.delay = 0.3
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
            # Until every endpoint had a turn, or one had all of its 10 (then the others had
            # waited behind its whole backlog).
            while len(first_seen) < len(receivers) and all(r.hits < 10 for r in receivers):
                assert time.monotonic() - started < 30, "no endpoint got through its backlog"
                for i, r in enumerate(receivers):
                    if r.hits and i not in first_seen:
                        first_seen[i] = time.monotonic() - started
                time.sleep(0.02)  # the sampling period, not a wait for a result
        finally:
            p.stop(timeout=10)
        # Served in arrival order, each endpoint's 10 would take ~3 s (0.6 s a wave of two):
        # the last two would start only once the first had all of theirs. Rotating, all start
        # in ~2 waves, long before any endpoint gets through its 10.
        print(f"first POST per endpoint after (s): {sorted(first_seen.values())}")
        assert len(first_seen) == len(receivers), (first_seen, [r.hits for r in receivers])
    finally:
        for r in receivers:
            r.delay = 0
            r.stop()
