"""The rules of reconciliation for one payment, one missed event and one PSP session.

`Reconciler` holds a run's PSP gate and tally; service.py runs its passes and records the run.
One Reconciler serves one Stripe mode (its provider's): its listings use that mode's key and it
touches only payments of that mode; a run has one per configured mode, sharing gate and tally.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from prometheus_client import Counter
from sqlalchemy import and_, func, or_, select

from app.errors import PayBridgeError
from app.extensions import db
from app.models import Payment, PaymentStatus, PspEvent, StatusSource, utcnow
from app.payments.attempts import payment_for_intent
from app.payments.outcomes import (
    DELAYED_METHOD_TYPES,
    is_backwards,
    settles_late,
    target_for_event,
    target_for_session,
)
from app.payments.psp_facts import apply_session
from app.payments.service import expire_payment, register_with_psp
from app.psp.base import CheckoutSession, PaymentProvider, PspError, PspEventData
from app.psp_events.intake import handled_event_types, process_event
from app.reconciliation.gate import PspGate
from app.reconciliation.lock import LockLost

log = logging.getLogger(__name__)

RECON_CORRECTIONS = Counter(
    "paybridge_recon_corrections_total",
    "Payments reconciliation moved, by from and to status",
    ["from_status", "to_status"],
)

NON_FINAL = tuple(s.value for s in PaymentStatus if not s.is_final)
# Stale payments whose session a listing of the PSP's sessions can stand in for a retrieve.
LISTABLE = (PaymentStatus.INITIATED.value, PaymentStatus.PENDING.value)
BATCH_SIZE = 200
COMPARE_BATCH = 100
MAX_DETAILS = 500
# PayBridge's clock and the PSP's may disagree by this much (a session is made just after its
# payment row): a payment counts as inside a listed window only this far from its edge.
CLOCK_MARGIN = timedelta(minutes=5)
# The wide pass's chunks span at least this much creation time (a burst of payments within
# one second must not make a chunk of none).
MIN_CHUNK = timedelta(minutes=1)
# Threads checking stale payments one PSP call each (every call still waits for the shared
# rate cap): at 150 ms a call, 4 threads reach ~26 calls/s, enough to fill the default 20/s.
CHECK_THREADS = 4
# RECON_DELAYED_STALE_AFTER_SECONDS's default: a SEPA debit settles within days.
DELAYED_STALE_AFTER = timedelta(days=1)


class OutOfTime(Exception):
    """The run's time budget is spent: stop starting new work."""


@dataclass
class Tally:
    checked: set[int] = field(default_factory=set)
    corrected: set[str] = field(default_factory=set)  # public ids
    still_open: int = 0
    errors: int = 0
    details: list[dict] = field(default_factory=list)
    details_dropped: int = 0
    events_listed: int = 0
    events_caught_up: int = 0
    sessions_listed: int = 0
    sessions_from: datetime | None = None  # where the wide pass began its walk
    unknown_sessions: int = 0
    phase_errors: list[str] = field(default_factory=list)
    out_of_time: bool = False
    events_complete: bool = False  # the missed-events pass went through to the end

    def add(self, entry: dict) -> None:
        if len(self.details) < MAX_DETAILS:
            self.details.append(entry)
        else:
            self.details_dropped += 1

    def merge(self, other: Tally) -> None:
        """Take in what a check made on another thread (its own tally) found."""
        self.checked |= other.checked
        self.corrected |= other.corrected
        self.errors += other.errors
        self.details_dropped += other.details_dropped
        for entry in other.details:
            self.add(entry)


class Reconciler:
    """The rules of one run (or of one payment's check), over one PSP mode and one rate gate."""

    def __init__(
        self,
        *,
        provider: PaymentProvider,
        gate: PspGate,
        dry_run: bool,
        keep_alive: Callable[[], None] = lambda: None,
        deadline: float | None = None,
        tally: Tally | None = None,
        delayed_stale_after: timedelta = DELAYED_STALE_AFTER,
    ) -> None:
        self.provider = provider
        # When a PENDING payment of a delayed method (SEPA, …) is stale: days, not minutes.
        self.delayed_stale_after = delayed_stale_after
        self.livemode = provider.livemode
        self.gate = gate
        self.dry_run = dry_run
        self.keep_alive = keep_alive
        self.deadline = deadline
        self.tally = tally if tally is not None else Tally()
        # Dry run: payments a missed event would already change (not reported twice).
        self.planned: dict[int, str] = {}
        # Stale payments the stale pass settled from a listed session (no retrieve of their own).
        self.covered: set[int] = set()
        self._window_floor: datetime | None = None  # payments made since: listing candidates
        self._covered_in_window = 0

    # -- plumbing ------------------------------------------------------------------------

    def tick(self) -> None:
        """Between two pieces of work: renew the lock, stop when the time budget is spent."""
        self.keep_alive()
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise OutOfTime()

    @staticmethod
    def load(payment_id: int) -> Payment | None:
        """The payment as committed now (not a stale copy from earlier in the session)."""
        stmt = select(Payment).where(Payment.id == payment_id)
        stmt = stmt.execution_options(populate_existing=True)
        return db.session.execute(stmt).scalar_one_or_none()

    def _finish_entry(self, entry: dict, payment: Payment | None) -> dict:
        """Fill in where the payment ended up, and count it."""
        if payment is not None:
            entry["to"] = entry.get("to") if self.dry_run else payment.status
            if not self.dry_run and entry["from"] != payment.status:
                entry["changed"] = True
                RECON_CORRECTIONS.labels(entry["from"] or "-", payment.status).inc()
        if entry.get("changed") or (self.dry_run and entry.get("to") not in (None, entry["from"])):
            if entry.get("payment"):
                self.tally.corrected.add(entry["payment"])
        if entry.get("error"):
            self.tally.errors += 1
        if entry.get("changed") or entry.get("error") or entry["action"] not in _QUIET_ACTIONS:
            self.tally.add({k: v for k, v in entry.items() if k != "changed"})
        return entry

    def _fail_entry(self, entry: dict, payment_id: int, exc: Exception) -> dict:
        """A per-payment error: roll back, see whether anything committed, count, go on."""
        db.session.rollback()
        log.warning("recon: payment %s: %s: %s", entry.get("payment"), type(exc).__name__, exc)
        payment = self.load(payment_id)
        entry["error"] = describe_error(exc)
        entry["why"] = "; ".join(filter(None, [entry.get("why"), f"error: {entry['error']}"]))
        entry.setdefault("action", "error")
        return self._finish_entry(entry, payment)

    # -- pass 1: events the webhooks never delivered ---------------------------------------

    def catch_up_events(self, since: datetime) -> None:
        self.tally.events_complete = False  # until this mode's listing too went to its end
        missing: list[PspEventData] = []
        page: list[PspEventData] = []
        listing = self.gate.iterate(
            "list_events",
            # Refund and subscription events too: a lost refund.failed after a success, or a
            # lost invoice.paid, is caught here like a lost checkout event.
            lambda: self.provider.list_events(handled_event_types(), since),
            key=lambda e: e.id,
        )
        for event in listing:
            if event.livemode != self.livemode:
                continue  # the other mode's pass lists it with its own key
            self.tally.events_listed += 1
            page.append(event)
            if len(page) >= COMPARE_BATCH:
                missing.extend(self._not_stored(page))
                page = []
                self.tick()
        missing.extend(self._not_stored(page))
        # Oldest first, as the webhooks would have come: the PSP lists newest first, so
        # reversed, events of the same second keep the order they were made in (a charge's
        # event before its checkout event).
        missing.reverse()
        missing.sort(key=lambda e: e.created_at)
        for event in missing:
            self.tick()
            self._catch_up(event)
        self.tally.events_complete = True

    def _not_stored(self, events: list[PspEventData]) -> list[PspEventData]:
        if not events:
            return []
        stored = set(
            db.session.execute(
                select(PspEvent.event_id).where(
                    PspEvent.psp == self.provider.name,
                    PspEvent.event_id.in_([e.id for e in events]),
                )
            ).scalars()
        )
        db.session.commit()
        return [e for e in events if e.id not in stored]

    def _catch_up(self, event: PspEventData) -> None:
        payment = self._payment_named_by(event)
        entry: dict = {
            "payment": payment.public_id if payment else None,
            "from": payment.status if payment else None,
            "to": payment.status if payment else None,
            "action": "event",
            "event": event.id,
            "why": f"missed webhook {event.type}",
        }
        if payment is not None:
            self.tally.checked.add(payment.id)
        if self.dry_run:
            target = target_for_event(event.type, event.session) if event.session else None
            if payment is not None and target is not None:
                current = payment.status_enum
                if target != current and not is_backwards(current, target):
                    entry["to"] = target.value
                    entry["action"] = "would_apply_event"
                    self.planned[payment.id] = target.value
            self.tally.events_caught_up += 1
            self._finish_entry(entry, payment)
            return
        try:
            row = process_event(event, received_via="recon", psp=self.provider.name)
        except Exception as exc:
            self._fail_entry(entry, payment.id if payment else 0, exc)
            return
        self.tally.events_caught_up += 1
        entry["why"] += f": {row.outcome}" + (f" ({row.detail})" if row.detail else "")
        if payment is None and row.payment_id is not None:
            payment = self.load(row.payment_id)
            entry.update(payment=payment.public_id if payment else None)
        else:
            payment = self.load(payment.id) if payment else None
        self._finish_entry(entry, payment)

    def _payment_named_by(self, event: PspEventData) -> Payment | None:
        """The payment an event is about, as it is before the event is handled (so its entry
        says where it was): by its session, or by the intent a charge or intent event names
        (`attempts.payment_for_intent`, the handler's own rule, without its lock).
        None for other events: their handler finds it."""
        if event.session is not None:
            return self._payment_for_session(event.session)
        if event.charge_attempt is not None:
            intent_id = event.charge_attempt.payment_intent_id
            metadata = event.charge_attempt.metadata
        elif event.payment_intent is not None:
            intent_id, metadata = event.payment_intent.id, event.payment_intent.metadata
        else:
            return None
        if not intent_id:
            return None  # a charge of no intent: its handler leaves it alone too
        return payment_for_intent(intent_id, metadata, lock=False)

    def _payment_for_session(self, session: CheckoutSession) -> Payment | None:
        payment = db.session.execute(
            select(Payment).where(Payment.psp_session_id == session.id)
        ).scalar_one_or_none()
        claimed = session.client_reference_id or session.metadata.get("paybridge_payment_id")
        if payment is None and claimed:
            payment = db.session.execute(
                select(Payment).where(Payment.public_id == claimed)
            ).scalar_one_or_none()
        return payment

    # -- pass 2: every stale non-final payment ---------------------------------------------

    def _stale(self, now: datetime, stale_after: timedelta):
        """The stale pass's rule: not final, untouched for `stale_after` or past its expiry;
        but a PENDING payment of a delayed method (its checkout complete, its debit settling
        for days) only once untouched for `delayed_stale_after`, whatever its session's
        expiry (`outcomes.settles_late`)."""
        settling = and_(
            Payment.status == PaymentStatus.PENDING.value,
            Payment.method_type.is_not(None),
            Payment.method_type.in_(sorted(DELAYED_METHOD_TYPES)),
        )
        return and_(
            Payment.status.in_(NON_FINAL),
            or_(
                and_(
                    ~settling,
                    or_(Payment.updated_at <= now - stale_after, Payment.psp_expires_at <= now),
                ),
                and_(settling, Payment.updated_at <= now - self.delayed_stale_after),
            ),
        )

    def _is_stale(self, row, now: datetime, stale_after: timedelta) -> bool:
        """The same rule in Python, for a payment row already loaded."""
        if row.status not in NON_FINAL:
            return False
        if settles_late(row.status, row.method_type):
            return row.updated_at <= now - self.delayed_stale_after
        return row.updated_at <= now - stale_after or (
            row.psp_expires_at is not None and row.psp_expires_at <= now
        )

    def stale_payment_ids(self, stale_after: timedelta) -> Iterator[int]:
        """Ids of non-final payments untouched for `stale_after` or past their session's
        expiry, in id order, a batch at a time (a fresh query per batch sees new commits)."""
        last_id = 0
        while True:
            ids = list(
                db.session.execute(
                    select(Payment.id)
                    .where(self._stale(utcnow(), stale_after), Payment.id > last_id)
                    .where(Payment.livemode == self.livemode)
                    .order_by(Payment.id)
                    .limit(BATCH_SIZE)
                ).scalars()
            )
            db.session.commit()
            if not ids:
                return
            yield from ids
            last_id = ids[-1]

    def check_stale_payments(self, stale_after: timedelta, since: datetime | None = None) -> None:
        """Pass 2. With `since` (the wide pass's window), INITIATED/PENDING payments made in
        it are settled from a listing of the sessions made since the oldest of them, 100 a call
        (the other listed sessions are compared on the way, as the wide pass would); every
        stale payment the listing did not cover is then checked on its own, a few at a time."""
        if since is not None:
            self._check_listed_stale(stale_after, since)
        self._check_each_stale(stale_after)

    def _check_listed_stale(self, stale_after: timedelta, since: datetime) -> None:
        count, oldest = db.session.execute(
            select(func.count(), func.min(Payment.created_at)).where(
                self._stale(utcnow(), stale_after),
                Payment.status.in_(LISTABLE),
                Payment.psp_session_id.is_not(None),
                Payment.created_at >= since + CLOCK_MARGIN,
                Payment.livemode == self.livemode,
            )
        ).one()
        db.session.commit()
        if not count:
            return  # nothing the listing would save a call for
        self._window_floor = since + CLOCK_MARGIN
        self._covered_in_window = 0
        # A session is made just after its payment row: none of the candidates' is older than
        # the oldest of them (less the margin). Earlier traffic in the window is not listed
        # here but by the wide pass, after the stale payments are settled.
        floor = oldest - CLOCK_MARGIN
        pages = 0
        page: list[CheckoutSession] = []
        listing = self.gate.iterate(
            "list_sessions",
            lambda: self.provider.list_checkout_sessions(floor),
            key=lambda s: s.id,
        )
        try:
            for session in listing:
                self.tally.sessions_listed += 1
                page.append(session)
                if len(page) < COMPARE_BATCH:
                    continue
                self._compare_page(page, stale_after)
                pages += 1
                remaining = count - self._covered_in_window
                page = []
                # Stop when every candidate is covered, or when listing on would cost more
                # calls than a retrieve for each one left (they get their own check next).
                if remaining <= 0 or pages >= remaining:
                    break
            else:
                self._compare_page(page, stale_after)
        except (OutOfTime, LockLost):
            raise
        except Exception as exc:
            # The stale payments not covered get a retrieve each.
            db.session.rollback()
            log.warning("recon: listing sessions for the stale pass failed: %s", exc)
        finally:
            listing.close()

    def _still_open_as_listed(self, payment_id: int) -> None:
        """An INITIATED payment whose listed session is open and not past expiry: checked,
        and nothing to do (what check_payment would find, without loading it twice)."""
        self.covered.add(payment_id)
        self.tally.checked.add(payment_id)
        self.tally.still_open += 1

    def _check_listed(self, payment_id: int, session: CheckoutSession) -> None:
        """A stale payment whose own session was listed: settle it as a retrieve would."""
        self.covered.add(payment_id)
        if payment_id in self.planned:
            entry = {"to": self.planned[payment_id]}
        else:
            # A completed, unpaid session means PENDING or FAILED: only its payment intent
            # (which a retrieve expands, a listing does not) tells which.
            complete_unpaid = target_for_session(session) == PaymentStatus.PENDING
            tells_all = not complete_unpaid or session.payment_intent_status is not None
            entry = self.check_payment(payment_id, session=session if tells_all else None)
        if entry.get("to") in NON_FINAL:
            self.tally.still_open += 1

    def _check_each_stale(self, stale_after: timedelta) -> None:
        """Every stale payment not covered by a listing: one check each, on a few threads
        (each with its own app context and database session; each call waits for the cap)."""
        ids = (i for i in self.stale_payment_ids(stale_after) if i not in self.covered)
        threads = CHECK_THREADS
        if db.engine.dialect.name == "sqlite":
            threads = 1  # one writer at a time: threads would only wait on its file lock
        if threads <= 1:
            for payment_id in ids:
                self.tick()
                self._count_open(self._check_or_planned(payment_id))
            return
        app = current_app._get_current_object()
        pool = ThreadPoolExecutor(threads, thread_name_prefix="recon-check")
        running: set[Future] = set()
        try:
            for payment_id in ids:
                self.tick()
                if payment_id in self.planned:
                    self._count_open({"to": self.planned[payment_id]})
                    continue
                # Its own copy of the context: log lines keep the job's id.
                context = contextvars.copy_context()
                running.add(pool.submit(context.run, self._check_in_thread, app, payment_id))
                if len(running) >= threads * 2:
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    self._collect(done)
            while running:
                self.tick()
                done, running = wait(running, return_when=FIRST_COMPLETED)
                self._collect(done)
        finally:
            # Out of time, lock lost or a crash: start nothing new, let running checks end,
            # and count what they did in the run's record.
            pool.shutdown(wait=True, cancel_futures=True)
            for future in running:
                if future.done() and not future.cancelled() and future.exception() is None:
                    self._collect({future})

    def _check_or_planned(self, payment_id: int) -> dict:
        if payment_id in self.planned:
            return {"to": self.planned[payment_id]}
        return self.check_payment(payment_id)

    def _count_open(self, entry: dict) -> None:
        if entry.get("to") in NON_FINAL:
            self.tally.still_open += 1

    def _check_in_thread(self, app, payment_id: int) -> tuple[dict, Tally]:
        with app.app_context():
            worker = Reconciler(provider=self.provider, gate=self.gate, dry_run=self.dry_run)
            entry = worker.check_payment(payment_id)
            return entry, worker.tally

    def _collect(self, done: set[Future]) -> None:
        for future in done:
            entry, tally = future.result()
            self.tally.merge(tally)
            self._count_open(entry)

    def check_payment(self, payment_id: int, session: CheckoutSession | None = None) -> dict:
        """Ask the PSP about one payment and apply what it says. Returns the run's entry.

        `session`: the payment's session as a listing just gave it, instead of a retrieve."""
        payment = self.load(payment_id)
        if payment is None:
            return {"payment": None, "from": None, "to": None, "action": "missing"}
        self.tally.checked.add(payment.id)
        entry: dict = {
            "payment": payment.public_id,
            "from": payment.status,
            "to": payment.status,
            "action": "unchanged",
        }
        try:
            if payment.status_enum == PaymentStatus.CREATED:
                if self.dry_run:
                    entry.update(
                        to=PaymentStatus.INITIATED.value,
                        action="would_register",
                        why="registration outcome unknown: register again with the same "
                        "PSP idempotency key",
                    )
                    return self._finish_entry(entry, payment)
                payment = self._register(payment_id)
                entry.update(action="registered", why="registered again with the same key")
                if payment.is_final or payment.status_enum == PaymentStatus.CREATED:
                    return self._finish_entry(entry, payment)
            if not payment.psp_session_id:
                entry.update(action="error", error="the payment has no PSP session to check")
                return self._finish_entry(entry, payment)
            if session is None or session.id != payment.psp_session_id:
                session = self.gate.call(
                    "retrieve_session",
                    lambda: self.provider.retrieve_checkout_session(payment.psp_session_id),
                )
            self._apply_checked(entry, payment, session)
            return self._finish_entry(entry, self.load(payment_id))
        except OutOfTime:
            raise
        except (PspError, PayBridgeError) as exc:
            return self._fail_entry(entry, payment_id, exc)
        except Exception as exc:  # one payment's surprise must not stop the run
            log.exception("recon: unexpected error on payment %s", entry["payment"])
            return self._fail_entry(entry, payment_id, exc)

    def _register(self, payment_id: int) -> Payment:
        self.gate.call(
            "create_session",
            lambda: register_with_psp(payment_id, source=StatusSource.RECON),
        )
        db.session.commit()
        return self.load(payment_id)

    def _apply_checked(self, entry: dict, payment: Payment, session: CheckoutSession) -> None:
        """What the retrieved session means for the payment: apply it, or expire it."""
        current = payment.status_enum
        target = target_for_session(session)
        entry["session"] = session.id
        if target is None:
            if current.is_final:
                if current == PaymentStatus.FAILED:
                    self._expire_session_of_failed(entry, session)
                return
            if not _past_expiry(payment, session):
                if entry["action"] == "unchanged":
                    entry["action"] = "open"
                return
            entry["why"] = "checkout session open past its expiry"
            if self.dry_run:
                entry.update(action="would_expire", to=PaymentStatus.FAILED.value)
                return
            try:
                self.gate.call(
                    "expire_session",
                    lambda: expire_payment(payment.id, source=StatusSource.RECON, reason="expired"),
                )
                entry["action"] = "expired"
            except PayBridgeError as exc:
                if exc.code not in ("PAYMENT_ALREADY_FINAL", "ILLEGAL_TRANSITION"):
                    raise
                # The shopper finished checkout in the meantime: expire_payment applied that.
                db.session.rollback()
                entry.update(action="completed_at_psp", why=exc.message)
            db.session.commit()
            return
        if target == current:
            return
        entry["why"] = f"PSP session {session.status}/{session.payment_status}" + (
            f", payment intent {session.payment_intent_status}"
            if session.payment_intent_status
            else ""
        )
        if self.dry_run:
            if current == PaymentStatus.FAILED and target == PaymentStatus.SUCCESS:
                entry["action"] = "would_record_conflict"
            elif is_backwards(current, target):
                entry["action"] = "ignored"
            else:
                entry.update(action="would_apply", to=target.value)
            return
        entry["action"] = apply_session(payment.id, session, source=StatusSource.RECON)

    def _expire_session_of_failed(self, entry: dict, session: CheckoutSession) -> None:
        """A FAILED payment whose session is still open could still be paid: close it."""
        entry["why"] = "the payment is FAILED but its PSP session is still open"
        if self.dry_run:
            entry["action"] = "would_expire_session"
            return
        try:
            self.gate.call(
                "expire_session", lambda: self.provider.expire_checkout_session(session.id)
            )
            entry["action"] = "expired_session"
        except PspError as exc:
            entry.update(action="error", error=describe_error(exc))

    # -- pass 3: the PSP's sessions against the database, oldest chunk first ----------------

    def compare_sessions(
        self,
        start: datetime,
        until: datetime,
        *,
        chunk_sessions: int,
        compared_until: Callable[[datetime], None],
    ) -> None:
        """Pass 3: every session created from `start` on, walking forward in time a chunk of
        creation time at a time (the PSP lists each chunk newest first). When every session
        of a chunk has been compared, `compared_until` hears the time before which all have
        been: the chunk's end, or `until` after the last chunk. That one is open-ended, so the
        newest sessions are compared too, but a session made in the last moments (or dated by
        a PSP clock behind ours) may not be listed yet: the watermark stops at `until`.
        Why it lists on its own, not going on with the stale pass's listing: service.py."""
        chunk_start = start
        while True:
            self.tick()  # an empty chunk compares nothing, so ticks nowhere else
            chunk_end = _chunk_end(chunk_start, until, chunk_sessions, self.livemode)
            self._compare_listing(self._sessions_created(chunk_start, chunk_end))
            compared_until(chunk_end or until)
            if chunk_end is None:
                return
            chunk_start = chunk_end

    def _sessions_created(
        self, start: datetime, before: datetime | None
    ) -> Iterator[CheckoutSession]:
        return self.gate.iterate(
            "list_sessions",
            lambda: self.provider.list_checkout_sessions(start, created_before=before),
            key=lambda s: s.id,
        )

    def _compare_listing(self, listing: Iterator[CheckoutSession]) -> None:
        page: list[CheckoutSession] = []
        try:
            for session in listing:
                self.tally.sessions_listed += 1
                page.append(session)
                if len(page) >= COMPARE_BATCH:
                    self._compare_page(page)
                    page = []
            self._compare_page(page)
        finally:
            listing.close()

    def _compare_page(
        self, sessions: list[CheckoutSession], stale_after: timedelta | None = None
    ) -> None:
        """Each listed session against its payment. With `stale_after` (the stale pass's
        listing) a stale payment is settled from its own session as a retrieve would, and is
        otherwise left to the stale pass's own check of it (registration, a retrieve)."""
        if not sessions:
            return
        columns = (
            Payment.id,
            Payment.public_id,
            Payment.psp_session_id,
            Payment.status,
            Payment.updated_at,
            Payment.psp_expires_at,
            Payment.created_at,
            Payment.livemode,
            Payment.method_type,
        )
        by_session = {
            p.psp_session_id: p
            for p in db.session.execute(
                select(*columns).where(Payment.psp_session_id.in_([s.id for s in sessions]))
            )
        }
        claims = {_claimed_payment(s) for s in sessions if s.id not in by_session} - {None}
        by_public = (
            {
                p.public_id: p
                for p in db.session.execute(select(*columns).where(Payment.public_id.in_(claims)))
            }
            if claims
            else {}
        )
        db.session.commit()
        now = utcnow()
        for session in sessions:
            self.tick()
            row = by_session.get(session.id) or by_public.get(_claimed_payment(session))
            if row is None:
                self._unknown_session(session)
                continue
            if row.livemode != self.livemode:
                continue  # listed with this mode's key, but the other mode's: never crossed
            if stale_after is not None and self._is_stale(row, now, stale_after):
                own = row.psp_session_id == session.id
                if own and row.status in LISTABLE and row.id not in self.covered:
                    if _open_within_its_window(row, session) and row.id not in self.planned:
                        self._still_open_as_listed(row.id)
                    else:
                        self._check_listed(row.id, session)
                    floor = self._window_floor
                    if floor is not None and row.created_at >= floor:
                        self._covered_in_window += 1
                continue
            if _agrees(row, session):
                continue  # nothing _compare_one would do: spare it a load per session
            self._compare_one(row.id, session)

    def _unknown_session(self, session: CheckoutSession) -> None:
        self.tally.unknown_sessions += 1
        claimed = _claimed_payment(session)
        paid = target_for_session(session) == PaymentStatus.SUCCESS
        # A shared PSP account has other integrations' sessions: report ours, and any paid one.
        if not paid and not (claimed or "").startswith("pay_"):
            return
        self.tally.add(
            {
                "payment": claimed,
                "session": session.id,
                "from": None,
                "to": None,
                "action": "unknown_session",
                "why": f"PSP session {session.status}/{session.payment_status} "
                f"({session.amount_total} {session.currency}) has no payment in PayBridge",
            }
        )

    def _compare_one(self, payment_id: int, session: CheckoutSession) -> None:
        if payment_id in self.tally.checked:
            return  # looked at with a fresh retrieve earlier in this run
        payment = self.load(payment_id)
        if payment is None:
            return
        current = payment.status_enum
        target = target_for_session(session)
        entry = {
            "payment": payment.public_id,
            "session": session.id,
            "from": payment.status,
            "to": payment.status,
            "action": "unchanged",
        }
        if payment.psp_session_id and payment.psp_session_id != session.id:
            # A second session for one payment: it must not be paid as well.
            self.tally.checked.add(payment.id)
            entry["why"] = f"a second PSP session; the payment's is {payment.psp_session_id}"
            if target is None and not self.dry_run:
                self._guarded(entry, payment.id, self._expire_extra_session, session)
            elif target is None:
                entry["action"] = "would_expire_session"
                self._finish_entry(entry, payment)
            elif target == PaymentStatus.SUCCESS and not self.dry_run:
                # apply_session sees the session id differ and records a mismatch conflict.
                self._guarded(entry, payment.id, self._apply, session)
            else:
                entry["action"] = "extra_session"
                self._finish_entry(entry, payment)
            return
        if target is None:
            if current == PaymentStatus.FAILED:
                self.tally.checked.add(payment.id)
                self._expire_session_of_failed(entry, session)
                self._finish_entry(entry, payment)
            elif current == PaymentStatus.CREATED:
                # Its registration answer was lost; the session proves it was registered.
                self.tally.checked.add(payment.id)
                entry["why"] = "the PSP has a session for this CREATED payment"
                if self.dry_run:
                    entry.update(action="would_apply", to=PaymentStatus.INITIATED.value)
                    self._finish_entry(entry, payment)
                else:
                    self._guarded(entry, payment.id, self._apply, session)
            return
        if target == current:
            return
        if current.is_final:
            # Only a real disagreement: paid at the PSP but FAILED here (a conflict to refund),
            # or SUCCESS here while the PSP never took the money.
            if not (
                (current == PaymentStatus.FAILED and target == PaymentStatus.SUCCESS)
                or (current == PaymentStatus.SUCCESS and target == PaymentStatus.FAILED)
            ):
                return
        elif is_backwards(current, target):
            return
        self.tally.checked.add(payment.id)
        entry["why"] = f"PSP session {session.status}/{session.payment_status}"
        if self.dry_run:
            if current.is_final:
                paid = target == PaymentStatus.SUCCESS
                entry["action"] = "would_record_conflict" if paid else "disagreement"
            else:
                entry.update(action="would_apply", to=target.value)
            self._finish_entry(entry, payment)
            return
        self._guarded(entry, payment.id, self._apply, session)

    def _apply(self, entry: dict, payment_id: int, session: CheckoutSession) -> None:
        entry["action"] = apply_session(payment_id, session, source=StatusSource.RECON)

    def _expire_extra_session(self, entry: dict, payment_id: int, session: CheckoutSession) -> None:
        self.gate.call("expire_session", lambda: self.provider.expire_checkout_session(session.id))
        entry["action"] = "expired_session"

    def _guarded(self, entry: dict, payment_id: int, work: Callable, session: CheckoutSession):
        try:
            work(entry, payment_id, session)
        except OutOfTime:
            raise
        except Exception as exc:
            if not isinstance(exc, PspError | PayBridgeError):
                log.exception("recon: unexpected error on payment %s", entry["payment"])
            self._fail_entry(entry, payment_id, exc)
            return
        self._finish_entry(entry, self.load(payment_id))


_QUIET_ACTIONS = frozenset({"unchanged", "open", "missing"})


def _chunk_end(start: datetime, until: datetime, sessions: int, livemode: bool) -> datetime | None:
    """Where the wide pass's chunk from `start` ends: at the creation time of the payment
    `sessions` rows on, whole seconds (the PSP's precision), at least MIN_CHUNK on. A session
    is made just after its payment's row, so a chunk holds about that many sessions whatever
    the traffic: a busy hour is several chunks, an idle day one. None when the end reaches
    `until`: the last chunk, open-ended."""
    nth = db.session.execute(
        select(Payment.created_at)
        .where(Payment.created_at >= start, Payment.livemode == livemode)
        .order_by(Payment.created_at)
        .offset(sessions)
        .limit(1)
    ).scalar_one_or_none()
    db.session.commit()
    if nth is None:
        return None
    end = max(nth.replace(microsecond=0), start + MIN_CHUNK)
    return end if end < until else None


def _claimed_payment(session: CheckoutSession) -> str | None:
    return session.client_reference_id or session.metadata.get("paybridge_payment_id")


def _agrees(row, session: CheckoutSession) -> bool:
    """The payment (as just read) and its own session say the same: an open session of a
    payment that is neither CREATED nor FAILED, or a session proving the status it has."""
    if row.psp_session_id != session.id:
        return False
    target = target_for_session(session)
    if target is None:
        return row.status not in (PaymentStatus.CREATED.value, PaymentStatus.FAILED.value)
    return target.value == row.status


def _open_within_its_window(row, session: CheckoutSession) -> bool:
    """An INITIATED payment (as just read) whose own session is still open and not expired."""
    return (
        row.status == PaymentStatus.INITIATED.value
        and row.psp_session_id == session.id
        and target_for_session(session) is None
        and not _past_expiry(row, session)
    )


def _past_expiry(payment: Payment, session: CheckoutSession) -> bool:
    now = utcnow()
    return any(t is not None and t <= now for t in (payment.psp_expires_at, session.expires_at))


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, PayBridgeError):
        return f"{exc.code}: {exc.message}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]
