"""Rate limits counted in Redis, shared by every process: the per-second windows of the API's
limits, the fair cap on creates towards the PSP, and what both do while Redis is down.

Both fail open. A limit protects PayBridge's capacity and the PSP account's budget; neither
decides correctness (the database does), so an unreachable Redis must not refuse payments. While
it is down, requests pass unchecked and are counted (`paybridge_rate_limit_unchecked_total`),
Redis is asked again only every few seconds (no connect timeout paid per request), and the
outage is logged when it starts, once a minute while it lasts, and when it ends.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis import Redis

from app.metrics import RATE_LIMIT_UNCHECKED

log = logging.getLogger(__name__)

RETRY_STORAGE_SECONDS = 5.0
LOG_EVERY_SECONDS = 60.0


class Outage:
    """One limit's view of its storage: up, or down since when (per process)."""

    def __init__(self, limit: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._logged_at = 0.0
        self._unchecked = 0

    def skip(self) -> bool:
        """True while the storage is known down: the caller lets the request through unchecked
        (and says so with `passed_unchecked`). Once a retry is due, exactly one caller of the
        process gets False and asks the storage (its answer or timeout then calls `answered`
        or `failed`); every other caller meanwhile still skips, so a storage that hangs costs
        one request its timeout, not every request arriving while it is probed."""
        if self._down_since is None:
            return False
        now = self._clock()
        if now < self._retry_at:
            return True
        with self._lock:
            if self._down_since is None or now < self._retry_at:
                return self._down_since is not None
            self._retry_at = now + RETRY_STORAGE_SECONDS  # this caller probes, the rest skip
        return False

    def failed(self, error: BaseException) -> None:
        now = self._clock()
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = now
            self._retry_at = now + RETRY_STORAGE_SECONDS
        if first:
            self._logged_at = now
            log.warning(
                "rate limit %s: storage unreachable (%s): requests pass unchecked until it "
                "answers again",
                self.limit,
                type(error).__name__,
            )

    def passed_unchecked(self) -> None:
        RATE_LIMIT_UNCHECKED.labels(self.limit).inc()
        now = self._clock()
        with self._lock:
            self._unchecked += 1
            due = now - self._logged_at >= LOG_EVERY_SECONDS
            if due:
                self._logged_at, unchecked, self._unchecked = now, self._unchecked, 0
        if due:
            log.warning(
                "rate limit %s: storage still unreachable; %d requests passed unchecked in the "
                "last minute",
                self.limit,
                unchecked,
            )

    def answered(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            down_since, self._down_since = self._down_since, None
            unchecked, self._unchecked = self._unchecked, 0
        if down_since is not None:
            log.warning(
                "rate limit %s: storage answers again after %.0f s (%d requests unchecked)",
                self.limit,
                self._clock() - down_since,
                unchecked,
            )


# -- per-second windows (the API's limits) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quota:
    """Where a caller stands in the current window: what the rate-limit headers say."""

    limit: int
    remaining: int
    reset: int  # unix seconds: when the window ends
    exceeded: bool

    def retry_after(self, now: float | None = None) -> int:
        return max(1, math.ceil(self.reset - (time.time() if now is None else now)))


def count_in_window(storage, identity: str, limit: int) -> Quota:
    """Count one request of `identity` in the current one-second window (fixed, aligned to the
    clock, so that every process counts in the same key) with one INCR on the storage of
    Flask-Limiter (`limits`' Redis storage: an atomic increment that sets the key's expiry)."""
    now = time.time()
    window = int(now)
    count = storage.incr(f"api:{identity}:{window}", 2)
    return Quota(limit, max(0, limit - count), window + 1, count > limit)


# -- the fair cap on creates towards the PSP -----------------------------------------------------

# Two GCRA token buckets reserved together, atomically, on Redis' own clock: the PSP account's
# (KEYS[1]) and the merchant's share of it (KEYS[2]). The share follows the merchants that
# created in the last ACTIVE_WINDOW seconds (KEYS[3], a sorted set: merchant -> last call, the
# caller included): with N of them each may take at most 1/(N + 1) of the account's rate (and
# at most the configured share), so N bursting merchants take at most N/(N + 1) of it and one
# more merchant always finds room; never less than FLOOR_RATE calls a second. Shares hold only
# while the account's bucket is at least half used: many calm merchants do not hold a busy one
# to a small share while the account has room.
# ARGV: the account's interval and burst tolerance in microseconds, the account's rate per
# second, the configured share, the longest wait the caller accepts (microseconds), the
# merchant, the window (microseconds) and the floor rate. A call conforms from
# tat - tolerance on (tat: when the bucket is full again). Returns the wait in microseconds,
# reserved; or -(the wait needed) - 1, with nothing reserved, when it is longer than the caller
# accepts.
_FAIR_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[5])
local window = tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
redis.call('ZADD', KEYS[3], now, ARGV[6])
redis.call('PEXPIRE', KEYS[3], math.ceil(window / 1000))
local active = redis.call('ZCARD', KEYS[3])
local share = math.min(tonumber(ARGV[4]), 1 / (active + 1))
local mine = math.min(rate, math.max(rate * share, tonumber(ARGV[8])))
local intervals = {tonumber(ARGV[1]), math.floor(1000000 / mine)}
local burst = math.max(1, math.floor(mine))
local tolerances = {tonumber(ARGV[2]), intervals[2] * (burst - 1)}
local tats = {}
for i = 1, 2 do
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  tats[i] = tat
end
-- Shares hold only while the account is at least half busy: with room to spare, one merchant
-- may use it (the account's own bucket still holds).
local shared = tats[1] - now >= tolerances[1] / 2
local wait = math.max(0, tats[1] - tolerances[1] - now)
if shared then wait = math.max(wait, tats[2] - tolerances[2] - now) end
if wait > max_wait then return -wait - 1 end
-- The merchant's bucket counts its calls either way, but never beyond full: a merchant that
-- used spare room is held to its share once the account is busy, not punished for the past.
local full = now + tolerances[2] + intervals[2]
local new_tats = {tats[1] + intervals[1], math.min(tats[2] + intervals[2], full)}
for i = 1, 2 do
  local ttl = math.ceil((new_tats[i] - now) / 1000) + 1000
  redis.call('SET', KEYS[i], string.format('%.0f', new_tats[i]), 'PX', ttl)
end
return wait
"""

# How recently a merchant must have asked for a create to count as active (and take a share).
ACTIVE_WINDOW_SECONDS = 10.0
# The least a merchant's share allows, whatever the number of active merchants (the account's
# cap still holds: with very many merchants bursting, some of them wait for the account).
FLOOR_RATE_PER_SECOND = 1.0


class FairCap:
    """A cap on calls towards one PSP account, `rate` per second with a second's burst, shared
    fairly: while the account is at least half busy, each of the N merchants calling in the last
    ACTIVE_WINDOW_SECONDS may take at most 1/(N + 1) of it (and at most `share`), so bursting
    merchants wait or are refused while a calm one still finds room."""

    LIMIT = "psp_create"

    def __init__(self, redis: Redis, *, key: str) -> None:
        self.redis = redis
        self.key = key
        self.outage = Outage(self.LIMIT)
        self._script = redis.register_script(_FAIR_RESERVE)

    def reserve(
        self, merchant_id: int, *, rate: float, share: float, max_wait: float
    ) -> tuple[bool, float]:
        """Reserve a slot for one call of the merchant: (True, seconds to wait for it, at most
        max_wait), or (False, seconds until one would be free) with nothing reserved."""
        if self.outage.skip():
            self.outage.passed_unchecked()
            return True, 0.0
        interval = 1.0 / rate
        try:
            wait_us = int(
                self._script(
                    keys=[self.key, f"{self.key}:m:{merchant_id}", f"{self.key}:active"],
                    args=[
                        int(interval * 1e6),
                        _tolerance_us(interval, rate),
                        repr(float(rate)),
                        repr(float(share)),
                        int(max_wait * 1e6),
                        merchant_id,
                        int(ACTIVE_WINDOW_SECONDS * 1e6),
                        repr(FLOOR_RATE_PER_SECOND),
                    ],
                )
            )
        except Exception as error:  # Redis down or refusing: the PSP's own 429s still protect
            self.outage.failed(error)
            self.outage.passed_unchecked()
            return True, 0.0
        self.outage.answered()
        if wait_us < 0:
            return False, (-wait_us - 1) / 1e6
        return True, wait_us / 1e6


def _tolerance_us(interval: float, burst: float) -> int:
    """A bucket's burst tolerance: a second's worth of calls, at least one."""
    return int(interval * (max(1, math.floor(burst)) - 1) * 1e6)
