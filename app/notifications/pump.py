"""The worker's notification pump: keeps up to N deliveries in flight from the outbox.

One thread fans new notifications out to their endpoints (`fan_out`), claims due deliveries
in batches (`claim_due`) and records their outcomes in batches (`record_outcomes`); a pool of
N threads only POSTs. So the database sees a few statements per batch instead of a dozen per
notification, and no per-notification job, queue entry or registry exists to pay for: the
outbox rows are the only record. Several pumps (worker processes) share the outbox safely:
each claim takes other rows (SKIP LOCKED), and a row claimed by a pump that died is claimed
again once its lease runs out.

Fair delivery: an endpoint that answers slowly (or has not answered yet) holds at most
NOTIFY_ENDPOINT_CONCURRENCY of this pump's slots; one that answers fast may borrow every free
slot, since it gives them back at once. So one busy endpoint that answers fast uses the whole
pump, several share it as their POSTs finish, and a hanging one holds only its share, each
POST for the timeout, while the others go on at full speed. An endpoint that answered fast and
then hangs holds what it borrowed only until it is seen slow (a POST out longer than a quarter
of the timeout): from then on its POSTs beyond its share hold no slot, only a thread of the
pool's spare half, so the others get the slots back long before those POSTs time out. The
shares are per process: each
process's slots are its own threads, which is what a hanging endpoint would take; a global
(Redis) count would add a round trip per claim and a failure mode to the pump for nothing the
processes' own counts do not already bound (N processes: at most N shares).

Stopping is warm: no new claims, every POST in flight finishes and its outcome is recorded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
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
    endpoints_with_due,
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
        # Threads: a slot each, and as many spare for POSTs that outlive their slot (`_held`).
        self.threads = 2 * concurrency
        self.burst = burst
        self.poll_seconds = float(app.config["NOTIFY_POLL_SECONDS"])
        self.options = DeliveryOptions.from_config(app.config)
        self.endpoint_share = int(app.config["NOTIFY_ENDPOINT_CONCURRENCY"])
        # An endpoint answers fast when its POSTs take less than this.
        self.fast_seconds = self.options.timeout / 4
        self._fast: dict[int, bool] = {}  # by endpoint: its last POST came back fast
        self._due_endpoints: set[int] = set()  # those with due deliveries, as last looked up
        # When each endpoint was last given a claim (monotonic): shares go longest-waiting first.
        self._served_at: dict[int, float] = {}
        self._due_endpoints_at = 0.0  # monotonic time of that look-up
        # When each POST in flight really started (by delivery id; written by the sender
        # threads): a loaded machine's wait for a thread must not make an endpoint look slow.
        self._started: dict[int, float] = {}
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
            ThreadPoolExecutor(self.threads, thread_name_prefix="notify") as pool,
        ):
            last_tries = FINAL_RECORD_TRIES
            while True:
                stopping = self._stopping.is_set()
                claimed = 0 if stopping else self._claim_into(pool)
                # Waits up to a poll for a POST to finish. What finished frees slots: claim
                # again at once, even when it was all in flight (the claim above may have found
                # too few slots free only because those POSTs were not collected yet).
                collected = self._collect_finished() if self._in_flight else 0
                recorded = self._record()
                idle = not claimed and not collected and not self._in_flight
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
        room = self._room()  # first: it marks endpoints slow whose POSTs are out too long
        free = min(self.concurrency - self._held(), self.threads - len(self._in_flight))
        # With POSTs in flight, wait until a quarter of the slots are free: fewer, larger claims.
        if free < (max(1, self.concurrency // 4) if self._in_flight else 1):
            return 0
        try:
            # Once a claim came back short, what was due is taken: until a cheap lock-free read
            # sees more, do not open claiming transactions (one per finished POST otherwise).
            if self._all_taken and not any_due():
                return 0
            fan_out()
            claims = claim_due(
                free, room, others=self.endpoint_share, first=self._shares_first(room)
            )
        except Exception:
            log.exception("notification pump: claiming failed; trying again shortly")
            self._stopping.wait(self.poll_seconds)
            return 0
        self._all_taken = len(claims) < free
        served = time.monotonic()
        for claim in claims:
            self._served_at[claim.endpoint_id] = served
            self._in_flight[pool.submit(self._attempt, claim)] = claim
        return len(claims)

    def _attempt(self, claim: Claim) -> AttemptResult:
        self._started[claim.delivery_id] = time.monotonic()
        return attempt(claim, self.options)

    def in_flight(self) -> Counter[int]:
        """POSTs in flight by endpoint id: a snapshot, safe to take from another thread."""
        return Counter(claim.endpoint_id for claim in dict(self._in_flight).values())

    def _held(self) -> int:
        """The slots the POSTs in flight hold: all of a fast endpoint's, at most its share of
        any other's (the rest wait on spare threads, holding up no other endpoint)."""
        return sum(
            n if self._fast.get(endpoint, False) else min(n, self.endpoint_share)
            for endpoint, n in self.in_flight().items()
        )

    def _room(self) -> dict[int, int]:
        """How many more POSTs endpoints may start now: one that answers fast, every free slot
        (not limited here); one with POSTs in flight that does not, what is left of its share.
        Any other (not heard from yet, or slow with nothing in flight) gets its share."""
        slow_since = time.monotonic() - self.fast_seconds
        in_flight = self.in_flight()
        for future, claim in self._in_flight.items():
            started = self._started.get(claim.delivery_id)
            # Not back yet: no longer fast. One that is back but not collected yet (this thread
            # was busy with the database) is judged by its own duration when collected.
            if started is not None and started < slow_since and not future.done():
                self._fast[claim.endpoint_id] = False
        room = {endpoint: self.concurrency for endpoint, fast in self._fast.items() if fast}
        for endpoint, n in in_flight.items():
            if endpoint not in room:
                room[endpoint] = self.endpoint_share - n
        return room

    def _shares_first(self, room: dict[int, int]) -> dict[int, int]:
        """Each endpoint with due deliveries, and what is left of its share: served before the
        oldest-first rest (which lends what is free), so each gets its share even when
        another's backlog is older. The endpoints are looked up at most once a poll."""
        now = time.monotonic()
        if now - self._due_endpoints_at >= self.poll_seconds:
            self._due_endpoints = endpoints_with_due()
            self._due_endpoints_at = now
        in_flight = self.in_flight()
        first = {}
        # Longest waiting first: a claim may fill up before every endpoint's share is read, and
        # whoever comes first in a fixed order would always be served.
        waiting = sorted(self._due_endpoints, key=lambda e: (self._served_at.get(e, 0.0), e))
        for endpoint in waiting:
            if self._fast.get(endpoint, False) or endpoint not in room:
                left = self.endpoint_share - in_flight[endpoint]
            else:  # slow, with POSTs in flight: what is left of its share
                left = room[endpoint]
            if left > 0:
                first[endpoint] = left
        return first

    def _collect_finished(self) -> int:
        """Wait up to a poll for POSTs to finish and take their outcomes; how many finished."""
        done, pending = wait(self._in_flight, self.poll_seconds, return_when=FIRST_COMPLETED)
        if done and pending:
            more, _ = wait(pending, RECORD_LINGER_SECONDS, return_when="ALL_COMPLETED")
            done |= more
        for future in done:
            claim = self._in_flight.pop(future)
            self._started.pop(claim.delivery_id, None)
            result = future.result()
            # Fast: answered, and soon. A refused or reset connection says nothing of how
            # long the next POST will hang.
            self._fast[claim.endpoint_id] = (
                result.status_code is not None and result.duration_ms < self.fast_seconds * 1000
            )
            self._unrecorded.append((claim, result))
        return len(done)

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
