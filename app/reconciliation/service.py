"""Reconciliation: ask the PSP for the truth, apply it through the state machine, record the run.

A run has three passes, cheapest first:

1. **Missed events.** The PSP's `checkout.session.*` events since the last successful run (100
   a page) that PayBridge never stored go through `process_event(received_via="recon")`, exactly
   as if their webhook had come, so their history rows carry the event ids.
2. **Stale payments.** Every non-final payment not touched for RECON_STALE_AFTER_SECONDS (or
   past its session's expiry): CREATED ones are registered again with their own PSP idempotency
   key (the PSP answers with the session it already made, never a second one); the sessions of
   INITIATED/PENDING ones are retrieved and applied (`apply_session`, source recon); an open
   session past its expiry is expired at the PSP and the payment FAILED.
3. **Wide pass.** The PSP's sessions created in the last RECON_LOOKBACK_HOURS are compared with
   the database: disagreements are corrected (or recorded as conflicts by `apply_session`),
   sessions without a payment are reported, an open session of a FAILED payment is expired so
   it can no longer be paid.

Each correction is its own transaction through the state machine (row lock, history, outbox),
so a run that dies half-way leaves every payment either corrected or untouched. Runs never
overlap (a Redis lock, see lock.py); every PSP call passes the rate cap (gate.py). A dry run
only reads from the PSP and changes nothing but its own run record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from prometheus_client import Counter
from redis.exceptions import RedisError
from sqlalchemy import or_, select, update

from app.errors import PayBridgeError
from app.extensions import db
from app.models import Payment, PspEvent, ReconciliationRun, utcnow
from app.payments.outcomes import is_backwards, target_for_event, target_for_session
from app.payments.service import expire_payment, register_with_psp
from app.payments.status import PaymentStatus, StatusSource
from app.psp.base import CheckoutSession, PaymentProvider, PspError, PspEventData
from app.psp.factory import get_provider
from app.reconciliation.gate import PspGate
from app.reconciliation.lock import LockLost, RunLock
from app.reconciliation.ratelimit import RateCap
from app.tasks import get_redis
from app.webhooks.processing import HANDLED_TYPES, apply_session, process_event

log = logging.getLogger(__name__)

RECON_RUNS = Counter("paybridge_recon_runs_total", "Reconciliation runs by status", ["status"])
RECON_CORRECTIONS = Counter(
    "paybridge_recon_corrections_total",
    "Payments reconciliation moved, by from and to status",
    ["from_status", "to_status"],
)

NON_FINAL = tuple(s.value for s in PaymentStatus if not s.is_final)
CATCH_UP_EVENT_TYPES = sorted(HANDLED_TYPES)
BATCH_SIZE = 200
COMPARE_BATCH = 100
MAX_DETAILS = 500
# Events created while the previous run was listing them must not fall between two runs.
EVENTS_OVERLAP = timedelta(minutes=5)
# Stripe keeps events for 30 days.
EVENTS_RETENTION = timedelta(days=30)
# A crashed dry run (no lock) is declared dead after this long.
DRY_RUN_STALE_AFTER = timedelta(hours=6)


class _OutOfTime(Exception):
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
    unknown_sessions: int = 0
    phase_errors: list[str] = field(default_factory=list)
    out_of_time: bool = False
    events_complete: bool = False  # the missed-events pass went through to the end

    def add(self, entry: dict) -> None:
        if len(self.details) < MAX_DETAILS:
            self.details.append(entry)
        else:
            self.details_dropped += 1


class Reconciler:
    """The rules of one run (or of one payment's check), over one PSP and one rate gate."""

    def __init__(
        self,
        *,
        provider: PaymentProvider,
        gate: PspGate,
        dry_run: bool,
        keep_alive: Callable[[], None] = lambda: None,
        deadline: float | None = None,
    ) -> None:
        self.provider = provider
        self.gate = gate
        self.dry_run = dry_run
        self.keep_alive = keep_alive
        self.deadline = deadline
        self.tally = Tally()
        # Dry run: payments a missed event would already change (not reported twice).
        self.planned: dict[int, str] = {}

    # -- plumbing ------------------------------------------------------------------------

    def tick(self) -> None:
        """Between two pieces of work: renew the lock, stop when the time budget is spent."""
        self.keep_alive()
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise _OutOfTime()

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
        entry["error"] = _describe(exc)
        entry["why"] = "; ".join(filter(None, [entry.get("why"), f"error: {entry['error']}"]))
        entry.setdefault("action", "error")
        return self._finish_entry(entry, payment)

    # -- pass 1: events the webhooks never delivered ---------------------------------------

    def catch_up_events(self, since: datetime) -> None:
        missing: list[PspEventData] = []
        page: list[PspEventData] = []
        listing = self.gate.iterate(
            "list_events",
            lambda: self.provider.list_events(CATCH_UP_EVENT_TYPES, since),
            key=lambda e: e.id,
        )
        for event in listing:
            self.tally.events_listed += 1
            page.append(event)
            if len(page) >= COMPARE_BATCH:
                missing.extend(self._not_stored(page))
                page = []
                self.tick()
        missing.extend(self._not_stored(page))
        # Oldest first, as the webhooks would have come.
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
        payment = self._payment_for_session(event.session) if event.session else None
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

    def stale_payment_ids(self, stale_after: timedelta) -> Iterator[int]:
        """Ids of non-final payments untouched for `stale_after` or past their session's
        expiry, in id order, a batch at a time (a fresh query per batch sees new commits)."""
        last_id = 0
        while True:
            now = utcnow()
            ids = list(
                db.session.execute(
                    select(Payment.id)
                    .where(
                        Payment.status.in_(NON_FINAL),
                        Payment.id > last_id,
                        or_(Payment.updated_at <= now - stale_after, Payment.psp_expires_at <= now),
                    )
                    .order_by(Payment.id)
                    .limit(BATCH_SIZE)
                ).scalars()
            )
            db.session.commit()
            if not ids:
                return
            yield from ids
            last_id = ids[-1]

    def check_stale_payments(self, stale_after: timedelta) -> None:
        for payment_id in self.stale_payment_ids(stale_after):
            self.tick()
            if payment_id in self.planned:
                entry = {"to": self.planned[payment_id]}
            else:
                entry = self.check_payment(payment_id)
            if entry.get("to") in NON_FINAL:
                self.tally.still_open += 1

    def check_payment(self, payment_id: int) -> dict:
        """Ask the PSP about one payment and apply what it says. Returns the run's entry."""
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
            session = self.gate.call(
                "retrieve_session",
                lambda: self.provider.retrieve_checkout_session(payment.psp_session_id),
            )
            self._apply_checked(entry, payment, session)
            return self._finish_entry(entry, self.load(payment_id))
        except _OutOfTime:
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
            entry.update(action="error", error=_describe(exc))

    # -- pass 3: the PSP's recent sessions against the database -----------------------------

    def compare_sessions(self, since: datetime) -> None:
        page: list[CheckoutSession] = []
        listing = self.gate.iterate(
            "list_sessions",
            lambda: self.provider.list_checkout_sessions(since),
            key=lambda s: s.id,
        )
        for session in listing:
            self.tally.sessions_listed += 1
            page.append(session)
            if len(page) >= COMPARE_BATCH:
                self._compare_page(page)
                page = []
        self._compare_page(page)

    def _compare_page(self, sessions: list[CheckoutSession]) -> None:
        if not sessions:
            return
        by_session = {
            p.psp_session_id: p.id
            for p in db.session.execute(
                select(Payment).where(Payment.psp_session_id.in_([s.id for s in sessions]))
            ).scalars()
        }
        claims = {_claimed_payment(s) for s in sessions if s.id not in by_session} - {None}
        by_public = (
            {
                p.public_id: p.id
                for p in db.session.execute(
                    select(Payment).where(Payment.public_id.in_(claims))
                ).scalars()
            }
            if claims
            else {}
        )
        db.session.commit()
        for session in sessions:
            self.tick()
            payment_id = by_session.get(session.id) or by_public.get(_claimed_payment(session))
            if payment_id is None:
                self._unknown_session(session)
                continue
            self._compare_one(payment_id, session)

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
                entry["action"] = (
                    "would_record_conflict" if target == PaymentStatus.SUCCESS else ("disagreement")
                )
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
        except _OutOfTime:
            raise
        except Exception as exc:
            if not isinstance(exc, PspError | PayBridgeError):
                log.exception("recon: unexpected error on payment %s", entry["payment"])
            self._fail_entry(entry, payment_id, exc)
            return
        self._finish_entry(entry, self.load(payment_id))


_QUIET_ACTIONS = frozenset({"unchanged", "open", "missing"})


def _claimed_payment(session: CheckoutSession) -> str | None:
    return session.client_reference_id or session.metadata.get("paybridge_payment_id")


def _past_expiry(payment: Payment, session: CheckoutSession) -> bool:
    now = utcnow()
    return any(t is not None and t <= now for t in (payment.psp_expires_at, session.expires_at))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PayBridgeError):
        return f"{exc.code}: {exc.message}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]


# -- runs ----------------------------------------------------------------------------------


def build_gate(config) -> PspGate:
    """The rate cap shared by every process (through Redis), with the 429 back-off."""
    try:
        redis = get_redis()
    except Exception:  # no Redis configured at all: cap in process
        redis = None
    cap = RateCap(config["RECON_RATE_LIMIT_PER_SECOND"], redis=redis)
    return PspGate(
        cap,
        backoff_seconds=config["RECON_RATE_LIMIT_BACKOFF_SECONDS"],
        max_retries=config["RECON_RATE_LIMIT_MAX_RETRIES"],
    )


def events_since(now: datetime, lookback: timedelta) -> datetime:
    """Missed events are looked for since the last successful run began (minus an overlap),
    or over the lookback window when there is none."""
    last = db.session.execute(
        select(ReconciliationRun.started_at)
        .where(
            ReconciliationRun.status == ReconciliationRun.STATUS_SUCCEEDED,
            ReconciliationRun.dry_run.is_(False),
        )
        .order_by(ReconciliationRun.started_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    if last is None:
        return now - lookback
    return max(last - EVENTS_OVERLAP, now - EVENTS_RETENTION)


def _record_finished(
    trigger: str, dry_run: bool, status: str, error_text: str
) -> ReconciliationRun:
    now = utcnow()
    run = ReconciliationRun(
        trigger=trigger[:20],
        dry_run=dry_run,
        status=status,
        started_at=now,
        finished_at=now,
        details=[],
        error_text=error_text,
    )
    db.session.add(run)
    db.session.commit()
    RECON_RUNS.labels(status).inc()
    return run


def _close_interrupted_runs(current_id: int) -> None:
    """Runs still marked running died mid-way: we hold the lock, so none of them is alive."""
    now = utcnow()
    result = db.session.execute(
        update(ReconciliationRun)
        .where(
            ReconciliationRun.status == ReconciliationRun.STATUS_RUNNING,
            ReconciliationRun.id != current_id,
            or_(
                ReconciliationRun.dry_run.is_(False),
                ReconciliationRun.started_at < now - DRY_RUN_STALE_AFTER,
            ),
        )
        .values(
            status=ReconciliationRun.STATUS_FAILED,
            finished_at=now,
            error_text="interrupted: the process running it stopped before it finished",
        )
    )
    db.session.commit()
    if result.rowcount:
        log.warning("recon: marked %d interrupted run(s) as failed", result.rowcount)


def _phase(reconciler: Reconciler, name: str, work: Callable[[], None]) -> None:
    """Run one pass; a failure of the pass itself (a listing the PSP refused) is recorded and
    the next pass still runs."""
    if reconciler.tally.out_of_time:
        return
    try:
        work()
    except _OutOfTime:
        reconciler.tally.out_of_time = True
        log.warning("recon: time budget spent during %s; the next run continues", name)
    except LockLost:
        raise
    except Exception as exc:
        db.session.rollback()
        log.exception("recon: pass %s failed", name)
        reconciler.tally.phase_errors.append(f"{name}: {_describe(exc)}")
        reconciler.tally.errors += 1


def run_reconciliation(*, trigger: str, dry_run: bool = False) -> ReconciliationRun:
    """One reconciliation run (see the module docstring); returns its stored record."""
    config = current_app.config
    lock: RunLock | None = None
    if not dry_run:  # a dry run changes nothing, so it cannot conflict with a real one
        lock = RunLock(get_redis(), config["RECON_LOCK_TTL_SECONDS"])
        try:
            acquired = lock.acquire()
        except RedisError as exc:
            log.error("recon: cannot take the run lock, Redis unreachable: %s", exc)
            return _record_finished(
                trigger, dry_run, ReconciliationRun.STATUS_FAILED,
                f"Redis unreachable, cannot take the run lock: {exc}",
            )  # fmt: skip
        if not acquired:
            log.info("recon: another run holds the lock; this one (%s) is skipped", trigger)
            return _record_finished(
                trigger, dry_run, ReconciliationRun.STATUS_SKIPPED,
                "another reconciliation run was in progress",
            )  # fmt: skip
    try:
        return _run_locked(config, trigger, dry_run, lock)
    finally:
        if lock is not None:
            lock.release()


def _run_locked(config, trigger: str, dry_run: bool, lock: RunLock | None) -> ReconciliationRun:
    started = utcnow()
    run = ReconciliationRun(
        trigger=trigger[:20], dry_run=dry_run, status=ReconciliationRun.STATUS_RUNNING,
        started_at=started,
    )  # fmt: skip
    db.session.add(run)
    db.session.commit()
    run_id = run.id
    if lock is not None:
        _close_interrupted_runs(run_id)

    renew_every = max(1.0, config["RECON_LOCK_TTL_SECONDS"] / 3)
    last_renewal = time.monotonic()

    def keep_alive() -> None:
        nonlocal last_renewal
        if lock is not None and time.monotonic() - last_renewal >= renew_every:
            lock.renew()
            last_renewal = time.monotonic()

    gate = build_gate(config)
    reconciler = Reconciler(
        provider=get_provider(),
        gate=gate,
        dry_run=dry_run,
        keep_alive=keep_alive,
        deadline=time.monotonic() + config["RECON_MAX_RUN_SECONDS"],
    )
    lookback = timedelta(hours=config["RECON_LOOKBACK_HOURS"])
    stale_after = timedelta(seconds=config["RECON_STALE_AFTER_SECONDS"])
    status = ReconciliationRun.STATUS_SUCCEEDED
    error_text = None
    log.info("recon run %s started (trigger=%s, dry_run=%s)", run_id, trigger, dry_run)
    try:
        since = events_since(started, lookback)
        db.session.commit()
        _phase(reconciler, "events", lambda: reconciler.catch_up_events(since))
        _phase(reconciler, "payments", lambda: reconciler.check_stale_payments(stale_after))
        _phase(reconciler, "sessions", lambda: reconciler.compare_sessions(started - lookback))
    except LockLost as exc:
        status, error_text = ReconciliationRun.STATUS_FAILED, str(exc)
        log.error("recon run %s stopped: %s", run_id, exc)
    except Exception as exc:  # recorded on the run, and re-raised by the job if it wants
        db.session.rollback()
        status, error_text = ReconciliationRun.STATUS_FAILED, _describe(exc)
        log.exception("recon run %s failed", run_id)
    tally = reconciler.tally
    if tally.phase_errors:
        status = ReconciliationRun.STATUS_FAILED
        error_text = "; ".join(filter(None, [error_text, *tally.phase_errors]))
    if tally.out_of_time and not tally.events_complete:
        # The next run must list the same events again: this one is no baseline.
        status = ReconciliationRun.STATUS_FAILED
    if tally.out_of_time:
        error_text = "; ".join(
            filter(None, [error_text, "time budget spent: the next run continues"])
        )
    return _finish_run(run_id, reconciler, status, error_text)


def _finish_run(
    run_id: int, reconciler: Reconciler, status: str, error_text: str | None
) -> ReconciliationRun:
    tally = reconciler.tally
    run = db.session.get(ReconciliationRun, run_id, populate_existing=True)
    run.finished_at = utcnow()
    run.status = status
    run.checked = len(tally.checked)
    run.corrected = len(tally.corrected)
    run.still_open = tally.still_open
    run.errors = tally.errors
    details = list(tally.details)
    summary = {
        "action": "summary",
        "psp_calls": reconciler.gate.calls,
        "rate_limited": reconciler.gate.rate_limited,
        "events_listed": tally.events_listed,
        "events_caught_up": tally.events_caught_up,
        "sessions_listed": tally.sessions_listed,
        "unknown_sessions": tally.unknown_sessions,
        "details_dropped": tally.details_dropped,
    }
    # The one line without a payment: readable as it is in the dashboard's table.
    summary["why"] = (
        f"summary: {summary['psp_calls']} PSP calls ({summary['rate_limited']} rate limited), "
        f"{summary['events_caught_up']} of {summary['events_listed']} events caught up, "
        f"{summary['sessions_listed']} sessions listed, {summary['unknown_sessions']} without "
        f"a payment"
    )
    if tally.details_dropped:
        summary["why"] += f", {tally.details_dropped} lines not kept"
    details.append(summary)
    run.details = details
    run.error_text = error_text
    db.session.commit()
    RECON_RUNS.labels(status).inc()
    log.info(
        "recon run %s %s: checked=%d corrected=%d still_open=%d errors=%d psp_calls=%d",
        run_id, status, run.checked, run.corrected, run.still_open, run.errors,
        reconciler.gate.calls,
    )  # fmt: skip
    return run


def reconcile_payment(payment_id: int, *, trigger: str, dry_run: bool = False) -> dict:
    """Check one payment with the PSP now, whatever its age or status ("reconcile this payment").

    No run lock: every change goes through the payment's row lock like any other. Returns
    {"payment", "from", "to", "action", "why"?, "error"?, "changed", "status"}.
    """
    payment = db.session.get(Payment, payment_id)
    if payment is None:
        raise PayBridgeError("PAYMENT_NOT_FOUND")
    reconciler = Reconciler(
        provider=get_provider(payment.psp), gate=build_gate(current_app.config), dry_run=dry_run
    )
    log.info("recon: payment %s checked on demand (trigger=%s)", payment.public_id, trigger)
    entry = reconciler.check_payment(payment_id)
    final = reconciler.load(payment_id)
    entry.setdefault("changed", False)
    entry["status"] = final.status if final else None
    entry["trigger"] = trigger
    return entry


def summarize(details: Iterable[dict] | None) -> dict:
    """The summary entry of a run's details (psp_calls, events caught up, …), or {}."""
    for entry in details or ():
        if entry.get("action") == "summary":
            return entry
    return {}
