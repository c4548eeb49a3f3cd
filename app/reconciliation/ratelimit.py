"""A rate cap on calls towards the PSP, shared by every process through Redis.

The cap is a GCRA token bucket (bucket size `burst`, refilled at `rate` per second) kept in one
Redis key: each caller reserves the next free slot atomically (a Lua script on the server's own
clock, so processes on different hosts agree) and sleeps until it. With the default burst of 1
calls are spaced 1/rate apart, so no window of one second ever holds more than `rate` calls —
Stripe's own limiter counts per second too.

When Redis cannot be reached the cap falls back to the same bucket in process memory: the run
still never exceeds the rate on its own, and the run lock (runs never overlap) keeps the
processes that would share the budget to one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

DEFAULT_KEY = "paybridge:recon:psp-rate"
REDIS_RETRY_SECONDS = 30.0

# KEYS[1] = bucket key; ARGV = interval_us, tolerance_us. Returns the wait in microseconds.
# tat (theoretical arrival time) is the moment the bucket is full again; a call conforms
# from tat - tolerance on. The reservation moves tat one interval on.
_RESERVE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allowed_at = tat - tolerance
local wait = 0
if allowed_at > now then wait = allowed_at - now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return wait
"""

# Observers get (operation, unix time) for every call let through: metrics and tests use it.
CallObserver = Callable[[str, float], None]
_observers: list[CallObserver] = []


def add_call_observer(observer: CallObserver) -> None:
    _observers.append(observer)


def remove_call_observer(observer: CallObserver) -> None:
    if observer in _observers:
        _observers.remove(observer)


class RateCap:
    """Blocks each caller until the bucket lets its call through."""

    def __init__(
        self,
        rate_per_second: float,
        *,
        redis: Redis | None = None,
        key: str = DEFAULT_KEY,
        burst: int = 1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("the rate cap must be positive")
        self.rate = float(rate_per_second)
        self.burst = max(1, int(burst))
        self.redis = redis
        self.key = key
        self._sleep = sleep
        self._lock = threading.Lock()
        self._local_tat = 0.0
        self._warned = False
        self._redis_retry_at = 0.0
        self.calls = 0

    def slow_down(self, factor: float = 0.5, floor: float = 1.0) -> None:
        """After a 429: lower this cap's rate (for the rest of its life, i.e. the run)."""
        with self._lock:
            new_rate = max(floor, self.rate * factor)
            if new_rate < self.rate:
                log.warning("PSP rate limit: recon slows to %.2f calls/s", new_rate)
            self.rate = min(self.rate, new_rate)

    def acquire(self, operation: str = "call") -> float:
        """Wait for a slot; returns the seconds waited."""
        wait = self._reserve()
        if wait > 0:
            self._sleep(wait)
        with self._lock:  # the stale pass calls from several threads
            self.calls += 1
        now = time.time()
        for observer in list(_observers):
            observer(operation, now)
        return wait

    def _reserve(self) -> float:
        interval = 1.0 / self.rate
        tolerance = interval * (self.burst - 1)
        if self.redis is not None and time.monotonic() >= self._redis_retry_at:
            try:
                wait_us = self.redis.eval(
                    _RESERVE_SCRIPT,
                    1,
                    self.key,
                    int(interval * 1_000_000),
                    int(tolerance * 1_000_000),
                )
                return int(wait_us) / 1_000_000
            except RedisError as exc:
                # Don't pay a connect timeout on every call: ask Redis again a bit later.
                self._redis_retry_at = time.monotonic() + REDIS_RETRY_SECONDS
                if not self._warned:
                    log.warning("rate cap: Redis unreachable (%s), capping in process only", exc)
                    self._warned = True
        with self._lock:
            now = time.monotonic()
            tat = max(self._local_tat, now)
            wait = max(0.0, tat - tolerance - now)
            self._local_tat = tat + interval
            return wait
