"""Every reconciliation call towards the PSP passes this gate: the rate cap, and a 429 slows
the run down (back off, lower the rate, retry) instead of failing it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import TypeVar

from app.psp.base import PspError
from app.reconciliation.ratelimit import RateCap

log = logging.getLogger(__name__)

T = TypeVar("T")

# Stripe's largest page: the adapter fetches a new page after this many items.
PSP_PAGE_SIZE = 100
MAX_BACKOFF_SECONDS = 30.0
RATE_LIMIT_CODES = frozenset({"rate_limit", "RateLimitError", "lock_timeout"})


def is_rate_limited(exc: BaseException | None) -> bool:
    """True when the error, or one it was raised from, is the PSP saying "too many requests"."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, PspError) and (
            exc.http_status == 429 or (exc.code or "") in RATE_LIMIT_CODES
        ):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class RateLimitedTooLong(PspError):
    """The PSP kept answering 429 through every back-off."""

    retryable = True


class PspGate:
    def __init__(
        self,
        cap: RateCap,
        *,
        backoff_seconds: float = 1.0,
        max_retries: int = 6,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cap = cap
        self.backoff_seconds = backoff_seconds
        self.max_retries = max_retries
        self._sleep = sleep
        self._lock = threading.Lock()  # several threads of one run share the gate
        self.rate_limited = 0  # 429s seen (each one slowed the run down)

    @property
    def calls(self) -> int:
        return self.cap.calls

    def _back_off(self, operation: str, attempt: int, exc: BaseException) -> None:
        with self._lock:
            self.rate_limited += 1
        if attempt >= self.max_retries:
            raise RateLimitedTooLong(
                f"PSP rate limit on {operation} persisted through {attempt} retries",
                code="rate_limit",
                http_status=429,
            ) from exc
        self.cap.slow_down()
        delay = min(MAX_BACKOFF_SECONDS, self.backoff_seconds * (2**attempt))
        log.warning(
            "PSP rate limited %s (attempt %d): backing off %.2f s", operation, attempt + 1, delay
        )
        self._sleep(delay)

    def call(self, operation: str, func: Callable[[], T]) -> T:
        """One PSP call (or one service call that makes one) through the cap, 429s retried."""
        attempt = 0
        while True:
            self.cap.acquire(operation)
            try:
                return func()
            except Exception as exc:
                if not is_rate_limited(exc):
                    raise
                self._back_off(operation, attempt, exc)
                attempt += 1

    def iterate(
        self,
        operation: str,
        listing: Callable[[], Iterable[T]],
        key: Callable[[T], Hashable],
    ) -> Iterator[T]:
        """A paginated listing: one slot per page; after a 429 the listing starts again and
        skips what it already yielded (the interface has no resumable cursor)."""
        seen: set[Hashable] = set()
        attempt = 0
        while True:
            try:
                position = 0
                iterator = iter(listing())
                while True:
                    if position % PSP_PAGE_SIZE == 0:
                        self.cap.acquire(operation)
                    try:
                        item = next(iterator)
                    except StopIteration:
                        return
                    position += 1
                    item_key = key(item)
                    if item_key in seen:
                        continue
                    seen.add(item_key)
                    yield item
            except Exception as exc:
                if not is_rate_limited(exc):
                    raise
                self._back_off(operation, attempt, exc)
                attempt += 1
