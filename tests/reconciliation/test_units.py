"""Unit tests of single functions: the rate cap's arithmetic, 429 detection, the gate's
retry and restart rules, the run lock's ownership, and where the wide pass starts."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app.errors import PayBridgeError
from app.psp.base import PspRejected, PspUnavailable
from app.reconciliation.gate import PspGate, RateLimitedTooLong, is_rate_limited
from app.reconciliation.lock import LockLost, RunLock
from app.reconciliation.ratelimit import RateCap
from app.reconciliation.service import SESSIONS_OVERLAP, wide_pass_start


class FakeClock:
    """Sleeping moves this clock instead of the wall clock (unit tests only)."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_in_process_cap_spaces_calls_by_one_interval():
    clock = FakeClock()
    cap = RateCap(4.0, redis=None, sleep=clock.sleep)
    waits = [cap.acquire("x") for _ in range(5)]
    assert waits[0] == 0
    # Calls come back to back, so each waits for its own slot: 0.25 s apart.
    assert [round(w, 2) for w in waits[1:]] == [0.25, 0.5, 0.75, 1.0]
    assert cap.calls == 5


def test_slowing_down_halves_the_rate_but_not_below_one_per_second():
    cap = RateCap(3.0)
    cap.slow_down()
    assert cap.rate == 1.5
    cap.slow_down()
    cap.slow_down()
    assert cap.rate == 1.0


def test_rate_limit_detection_follows_the_cause_chain():
    limited = PspUnavailable("slow down", code="RateLimitError", http_status=429)
    assert is_rate_limited(limited)
    try:
        try:
            raise limited
        except PspUnavailable as exc:
            raise PayBridgeError("PSP_UNAVAILABLE") from exc
    except PayBridgeError as wrapped:
        assert is_rate_limited(wrapped)
    assert not is_rate_limited(PspUnavailable("down", code="APIError", http_status=503))
    assert not is_rate_limited(PspRejected("no", http_status=400))


def test_gate_retries_a_429_with_growing_pauses_then_gives_up():
    clock = FakeClock()
    gate = PspGate(
        RateCap(1000.0, sleep=clock.sleep), backoff_seconds=0.5, max_retries=3, sleep=clock.sleep
    )
    attempts = []

    def always_limited():
        attempts.append(1)
        raise PspUnavailable("429", http_status=429)

    with pytest.raises(RateLimitedTooLong):
        gate.call("retrieve", always_limited)
    assert len(attempts) == 4
    assert [s for s in clock.slept if s >= 0.5] == [0.5, 1.0, 2.0]
    assert gate.rate_limited == 4


def test_gate_does_not_retry_other_errors():
    gate = PspGate(RateCap(1000.0), backoff_seconds=0.01)
    calls = []

    def rejected():
        calls.append(1)
        raise PspRejected("bad", http_status=400)

    with pytest.raises(PspRejected):
        gate.call("create", rejected)
    assert len(calls) == 1


def test_gate_listing_restarts_after_a_429_and_never_yields_an_item_twice():
    clock = FakeClock()
    gate = PspGate(RateCap(1000.0, sleep=clock.sleep), backoff_seconds=0.01, sleep=clock.sleep)
    runs = []

    def listing():
        runs.append(1)
        yield from ["a", "b"]
        if len(runs) == 1:
            raise PspUnavailable("429 on page 2", http_status=429)
        yield from ["c"]

    assert list(gate.iterate("list", listing, key=lambda x: x)) == ["a", "b", "c"]
    assert len(runs) == 2 and gate.rate_limited == 1


def test_run_lock_belongs_to_its_holder(app_ctx):
    from app.extensions import get_redis

    redis = get_redis()
    first, second = RunLock(redis, 5), RunLock(redis, 5)
    assert first.acquire()
    assert not second.acquire()
    second.release()  # not the holder: must not free someone else's lock
    assert first.holder_exists()
    first.renew()
    first.release()
    assert not first.holder_exists()
    assert second.acquire()
    # The holder's lock expired and another run took it: renewing says so.
    redis.delete(second.key)
    third = RunLock(redis, 5)
    assert third.acquire()
    with pytest.raises(LockLost):
        second.renew()
    third.release()


@pytest.mark.parametrize(
    ("watermark_age", "start_age", "skipped"),
    [
        (None, timedelta(hours=48), False),  # no watermark yet: the whole window
        (timedelta(minutes=10), timedelta(minutes=10) + SESSIONS_OVERLAP, False),
        (timedelta(hours=48) - timedelta(minutes=1), timedelta(hours=48), False),  # overlap cut
        (timedelta(hours=50), timedelta(hours=48), True),  # down longer than the window
    ],
)
def test_the_wide_pass_starts_below_the_watermark_but_never_before_the_window(
    watermark_age, start_age, skipped
):
    now = datetime(2026, 12, 3, 12, 0)
    watermark = None if watermark_age is None else now - watermark_age
    assert wide_pass_start(watermark, now, timedelta(hours=48)) == (now - start_age, skipped)
