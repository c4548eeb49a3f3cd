"""The worker's notification pump: keeps up to N deliveries in flight from the outbox.

One thread fans new notifications out to their endpoints (`fan_out`), claims due deliveries
in batches (`claim_due`) and records their outcomes in batches (`record_outcomes`); a pool of
N threads only POSTs. So the database sees a few statements per batch instead of a dozen per
notification, and no per-notification job, queue entry or registry exists to pay for: the
outbox rows are the only record. Several pumps (worker processes) share the outbox safely:
each claim takes other rows (SKIP LOCKED), and a row claimed by a pump that died is claimed
again once its lease runs out.

Stopping is warm: no new claims, every POST in flight finishes and its outcome is recorded.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from flask import Flask

from app.models import utcnow
from app.notifications.delivery import (
    AttemptResult,
    Claim,
    DeliveryOptions,
    any_due,
    attempt,
    claim_due,
    record_outcomes,
)
from app.notifications.fanout import fan_out

log = logging.getLogger(__name__)

# After the first POST of a batch finishes, wait this much longer for others to finish too, so
# outcomes are written a handful per transaction rather than one by one.
RECORD_LINGER_SECONDS = 0.005
# Stopping with outcomes the database would not take: try this many more times, then leave them.
FINAL_RECORD_TRIES = 3


class NotificationPump:
    """Delivers due notifications on `concurrency` threads until stopped (or, in burst mode,
    until nothing is due)."""

    def __init__(self, app: Flask, *, concurrency: int, burst: bool = False) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.app = app
        self.concurrency = concurrency
        self.burst = burst
        self.poll_seconds = float(app.config["NOTIFY_POLL_SECONDS"])
        self.options = DeliveryOptions.from_config(app.config)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notification-pump", daemon=True)
        self._in_flight: dict[Future, Claim] = {}
        self._unrecorded: list[tuple[Claim, AttemptResult]] = []
        self._all_taken = False  # the last claim took everything that was due

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Claim nothing more; let the POSTs in flight finish and be recorded (warm)."""
        self._stopping.set()
        self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        log.info("notification pump started: %d deliveries at once", self.concurrency)
        with (
            self.app.app_context(),
            ThreadPoolExecutor(self.concurrency, thread_name_prefix="notify") as pool,
        ):
            last_tries = FINAL_RECORD_TRIES
            while True:
                stopping = self._stopping.is_set()
                claimed = 0 if stopping else self._claim_into(pool)
                if self._in_flight:
                    self._collect_finished()  # waits up to a poll for a POST to finish
                recorded = self._record()
                idle = not claimed and not self._in_flight
                if not idle:
                    continue
                if stopping or self.burst:
                    last_tries -= 1
                    if recorded or last_tries <= 0:
                        break  # unrecorded rows: their leases run out, they are sent again
                    time.sleep(self.poll_seconds)  # the database is down: wait, not spin
                    continue
                self._stopping.wait(self.poll_seconds)
        log.info("notification pump stopped")

    def _claim_into(self, pool: ThreadPoolExecutor) -> int:
        free = self.concurrency - len(self._in_flight)
        # With POSTs in flight, wait until a quarter of the slots are free: fewer, larger claims.
        if free < (max(1, self.concurrency // 4) if self._in_flight else 1):
            return 0
        try:
            # Once a claim came back short, what was due is taken: until a cheap lock-free read
            # sees more, do not open claiming transactions (one per finished POST otherwise).
            if self._all_taken and not any_due():
                return 0
            fan_out()
            claims = claim_due(free)
        except Exception:
            log.exception("notification pump: claiming failed; trying again shortly")
            self._stopping.wait(self.poll_seconds)
            return 0
        self._all_taken = len(claims) < free
        for claim in claims:
            self._in_flight[pool.submit(attempt, claim, self.options)] = claim
        return len(claims)

    def _collect_finished(self) -> None:
        done, pending = wait(self._in_flight, self.poll_seconds, return_when=FIRST_COMPLETED)
        if done and pending:
            more, _ = wait(pending, RECORD_LINGER_SECONDS, return_when="ALL_COMPLETED")
            done |= more
        for future in done:
            claim = self._in_flight.pop(future)
            self._unrecorded.append((claim, future.result()))

    def _record(self) -> bool:
        """Write the finished attempts; True when nothing is left unrecorded."""
        if not self._unrecorded:
            return True
        try:
            record_outcomes(self._unrecorded)
        except Exception:
            # Keep them while their leases last: a later try may still record them. After
            # that the rows are claimable again, and a new attempt will be made (at least once).
            log.exception(
                "notification pump: recording %d outcome(s) failed", len(self._unrecorded)
            )
            deadline = utcnow() - self.options.lease
            self._unrecorded = [o for o in self._unrecorded if o[0].claimed_at > deadline]
            return False
        self._unrecorded = []
        return True
