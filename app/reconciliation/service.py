"""Reconciliation: ask the PSP for the truth, apply it through the state machine, record the run.

A run has three passes, cheapest first:

1. **Missed events.** The PSP's `checkout.session.*` events since the last successful run (100
   a page) that PayBridge never stored go through `process_event(received_via="recon")`, exactly
   as if their webhook had come, so their history rows carry the event ids.
2. **Stale payments.** Every non-final payment not touched for RECON_STALE_AFTER_SECONDS (or
   past its session's expiry) — but a PENDING one paid by a delayed method (SEPA Direct Debit
   and the other bank debits and vouchers of `outcomes.DELAYED_METHOD_TYPES`, its method_type
   learned from the charge) only once untouched for RECON_DELAYED_STALE_AFTER_SECONDS (a day):
   a card settles in minutes, a debit in days, and asking every run for days meanwhile is a PSP
   call each time for nothing: CREATED ones are registered again with their own PSP idempotency
   key (the PSP answers with the session it already made, never a second one); the sessions of
   INITIATED/PENDING ones are applied (`apply_session`, source recon); an open session past its
   expiry is expired at the PSP and the payment FAILED. The sessions come from the PSP's list
   of those created since the oldest stale payment made in the lookback window (less a clock
   margin), newest first, 100 a call (stopping once every one of them is covered; the other
   listed sessions are compared on the way, as pass 3 would); a stale payment the listing does
   not cover (CREATED, older than the window, a session older than its payment's row, a
   completed but unpaid session whose payment intent only a retrieve shows) gets a call of its
   own, on a few threads, each call waiting for the shared rate cap.
3. **Wide pass.** The PSP's sessions are compared with the database: disagreements are
   corrected (or recorded as conflicts by `apply_session`), sessions without a payment are
   reported, an open session of a FAILED payment is expired so it can no longer be paid.

   Incremental: listing the whole lookback window every run is ~20,000 list calls at 1M
   payments a day, more than a run's budget, so no run would finish and, each starting from
   the newest, the older sessions would never be compared. Instead the runs keep a watermark
   W (`sessions_compared_until`; the next run takes the highest): every session created
   before W has been compared by a real run's wide pass. A run walks forward from W less
   SESSIONS_OVERLAP (from the window's start when there is no W yet, or when W is older than
   the window: those sessions are skipped, and the run says so), in chunks of creation time
   holding about RECON_WIDE_CHUNK_SESSIONS payments. Each chunk compared to its end moves W to
   that end in a transaction of its own, so a run cut short by its budget or killed keeps its
   progress, and the next one redoes at most one chunk. The last chunk is open-ended; it moves
   W to the run's start less CLOCK_MARGIN (sessions are dated by the PSP's clock). A dry run
   reads W and never moves it.

   Why a session below W needs no second look: a session changes only while it is open, and
   meanwhile its payment is either non-final (pass 2 retrieves its session once it is stale,
   until it is final) or FAILED (PayBridge fails a payment only after expiring its session, and
   the wide pass expires the open session of a FAILED payment it compares). What the PSP did
   with a session also comes as an event (pass 1). The overlap lists again the sessions that
   appeared in the PSP's listings later than their `created` says.

   Pass 3 lists on its own rather than taking over pass 2's listing: pass 2 leaves a stale
   payment to its own check, which sees only the payment's own session (not a second one), and
   a session left behind below W is never listed again. A session both list is compared twice,
   which changes nothing the second time.

Passes 1 to 3 run once per Stripe mode in use (configured, and with an API key of that mode, as
every payment of a mode was made with one: test, then live), each with that mode's key and over
that mode's payments only; the wide pass's watermark moves to where every mode got.

4. **Subscriptions.** Each subscription's latest invoices and state at the PSP: a renewal
   whose invoice webhook was lost becomes its payment, a lost cancellation is taken over
   (app/subscriptions/reconcile.py).

Each correction is its own transaction through the state machine (row lock, history, outbox),
so a run that dies half-way leaves every payment either corrected or untouched. Runs never
overlap (a Redis lock, see lock.py; while Redis is unreachable, a lease on the runs table);
every PSP call passes the rate cap (gate.py). A dry run only reads from the PSP and changes
nothing but its own run record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import partial

from flask import current_app
from prometheus_client import Counter
from redis.exceptions import RedisError
from sqlalchemy import or_, select, update

from app.errors import PayBridgeError
from app.extensions import db, get_redis
from app.models import ApiKey, Payment, ReconciliationRun, utcnow
from app.psp.factory import configured_modes, get_provider
from app.reconciliation.gate import PspGate
from app.reconciliation.lock import LockLost, RunLock
from app.reconciliation.ratelimit import RateCap
from app.reconciliation.reconciler import (
    CLOCK_MARGIN,
    OutOfTime,
    Reconciler,
    Tally,
    describe_error,
)
from app.refunds.reconcile import check_payment_refunds, check_refunds
from app.subscriptions.reconcile import reconcile_subscriptions

log = logging.getLogger(__name__)

RECON_RUNS = Counter("paybridge_recon_runs_total", "Reconciliation runs by status", ["status"])
RECON_ERRORS = Counter(
    "paybridge_recon_errors_total",
    "Errors a reconciliation run recorded (a payment, refund or subscription it could not check, "
    "a phase that failed); the run's details say which",
)
# A real run's error_text while it runs under the database lease (Redis unreachable).
DB_LEASE_NOTE = "running under the database lease: Redis was unreachable"
# A crashed dry run (no lock) is declared dead after this long.
DRY_RUN_STALE_AFTER = timedelta(hours=6)
# Events created while the previous run was listing them must not fall between two runs.
EVENTS_OVERLAP = timedelta(minutes=5)
# Stripe keeps events for 30 days.
EVENTS_RETENTION = timedelta(days=30)
# The wide pass lists again the sessions this far below its watermark: those that showed up in
# the PSP's listings later than their `created` says, or dated by a clock off by more than
# CLOCK_MARGIN.
SESSIONS_OVERLAP = CLOCK_MARGIN


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


def sessions_compared_until(now: datetime) -> datetime | None:
    """The wide pass's watermark: every PSP session created before it has been compared by a
    real run's wide pass (the highest any run reached; None before the first chunk ever).

    A mark after `now` was left by a run whose clock was ahead: it says nothing about the
    sessions created since the run really happened, so the highest mark not after `now` is taken
    (everything created before it was compared, the future run's listing included)."""
    column = ReconciliationRun.sessions_compared_until
    watermark = db.session.execute(
        select(column)
        .where(ReconciliationRun.dry_run.is_(False), column.is_not(None), column <= now)
        .order_by(column.desc())
        .limit(1)
    ).scalar_one_or_none()
    db.session.commit()
    return watermark


def wide_pass_start(
    watermark: datetime | None, now: datetime, lookback: timedelta
) -> tuple[datetime, bool]:
    """Where the wide pass starts: just below the watermark (less the overlap), never before
    the lookback window; and whether sessions below the window were never compared (the job
    was down longer than the window)."""
    floor = now - lookback
    if watermark is None:
        return floor, False
    return max(watermark - SESSIONS_OVERLAP, floor), watermark < floor


def _save_watermark(run_id: int, until: datetime) -> None:
    """Its own short transaction: a run cut short or killed keeps the chunks it completed."""
    db.session.execute(
        update(ReconciliationRun)
        .where(ReconciliationRun.id == run_id)
        .values(sessions_compared_until=until)
    )
    db.session.commit()


def _compare_sessions(
    config, reconcilers: list[Reconciler], run_id: int, started: datetime
) -> None:
    """Pass 3 from where the previous runs left it, for each mode in turn; the watermark moves
    only as far as every mode has compared (a dry run reads it, never moves it)."""
    reconciler = reconcilers[0]
    watermark = sessions_compared_until(started)
    start, skipped = wide_pass_start(
        watermark, started, timedelta(hours=config["RECON_LOOKBACK_HOURS"])
    )
    reconciler.tally.sessions_from = start
    if skipped:
        why = (
            f"sessions created from {watermark:%Y-%m-%d %H:%M:%S} to {start:%Y-%m-%d %H:%M:%S} "
            f"UTC were never compared: older than the lookback window (RECON_LOOKBACK_HOURS)"
        )
        log.warning("recon: %s", why)
        reconciler.tally.add(
            {"payment": None, "from": None, "to": None, "action": "sessions_skipped", "why": why}
        )

    reached = {mode.livemode: start for mode in reconcilers}

    def compared_until(livemode: bool, until: datetime) -> None:
        reached[livemode] = until
        if not reconciler.dry_run and min(reached.values()) > start:
            _save_watermark(run_id, min(reached.values()))

    for mode in reconcilers:
        mode.compare_sessions(
            start,
            started - CLOCK_MARGIN,
            chunk_sessions=config["RECON_WIDE_CHUNK_SESSIONS"],
            compared_until=partial(compared_until, mode.livemode),
        )


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


def _close_interrupted_runs(current_id: int, *, started_before: datetime | None = None) -> None:
    """Mark runs still 'running' that died mid-way as failed.

    Under the Redis lock no other real run is alive, so every other one is dead; under the
    database lease only those older than the lease window are (`started_before`).
    """
    now = utcnow()
    if started_before is not None:
        dead = ReconciliationRun.started_at < started_before
    else:
        dead = or_(
            ReconciliationRun.dry_run.is_(False),
            ReconciliationRun.started_at < now - DRY_RUN_STALE_AFTER,
        )
    result = db.session.execute(
        update(ReconciliationRun)
        .where(
            ReconciliationRun.status == ReconciliationRun.STATUS_RUNNING,
            ReconciliationRun.id != current_id,
            dead,
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


def _lease_window(config) -> timedelta:
    """How long a run may hold the database lease: its time budget plus the lock's TTL."""
    return timedelta(seconds=config["RECON_MAX_RUN_SECONDS"] + config["RECON_LOCK_TTL_SECONDS"])


def _live_runs(current_id: int, window: timedelta, *, lower_ids_only: bool, leased: bool):
    """Other real runs marked running and started within the lease window."""
    stmt = select(ReconciliationRun.id).where(
        ReconciliationRun.status == ReconciliationRun.STATUS_RUNNING,
        ReconciliationRun.dry_run.is_(False),
        ReconciliationRun.id != current_id,
        ReconciliationRun.started_at >= utcnow() - window,
    )
    if lower_ids_only:
        stmt = stmt.where(ReconciliationRun.id < current_id)
    if leased:
        stmt = stmt.where(ReconciliationRun.error_text == DB_LEASE_NOTE)
    found = db.session.execute(stmt.limit(1)).scalar_one_or_none()
    db.session.commit()
    return found is not None


def _skip(run: ReconciliationRun, why: str) -> ReconciliationRun:
    run.status = ReconciliationRun.STATUS_SKIPPED
    run.finished_at = utcnow()
    run.details = []
    run.error_text = why
    db.session.commit()
    RECON_RUNS.labels(run.status).inc()
    log.info("recon run %s skipped: %s", run.id, why)
    return run


def _phase(reconciler: Reconciler, name: str, work: Callable[[], None]) -> None:
    """Run one pass; a failure of the pass itself (a listing the PSP refused) is recorded and
    the next pass still runs."""
    if reconciler.tally.out_of_time:
        return
    started = time.monotonic()
    try:
        work()
    except OutOfTime:
        reconciler.tally.out_of_time = True
        log.warning("recon: time budget spent during %s; the next run continues", name)
    except LockLost:
        raise
    except Exception as exc:
        db.session.rollback()
        log.exception("recon: pass %s failed", name)
        reconciler.tally.phase_errors.append(f"{name}: {describe_error(exc)}")
        reconciler.tally.errors += 1
    finally:
        seconds = round(time.monotonic() - started, 2)
        # Where a run's time goes, for the operator (and bench/appctl.py): one line per pass.
        log.info("recon: pass %s took %.2fs", name, seconds, extra={"recon_pass": (name, seconds)})


def run_reconciliation(*, trigger: str, dry_run: bool = False) -> ReconciliationRun:
    """One reconciliation run (see the module docstring); returns its stored record.

    Real runs never overlap: the Redis lock decides, or, while Redis is unreachable, the
    runs table itself (the oldest live 'running' row goes, the others skip). A dry run changes
    nothing, so it takes no lock.
    """
    config = current_app.config
    if dry_run:
        return _execute(config, _start_run(trigger, dry_run=True), lock=None)
    lock = RunLock(get_redis(), config["RECON_LOCK_TTL_SECONDS"])
    try:
        acquired = lock.acquire()
    except RedisError as exc:
        log.warning("recon: Redis unreachable (%s): the database lease decides", exc)
        return _run_on_database_lease(config, trigger)
    if not acquired:
        log.info("recon: another run holds the lock; this one (%s) is skipped", trigger)
        return _record_finished(
            trigger, False, ReconciliationRun.STATUS_SKIPPED,
            "another reconciliation run was in progress",
        )  # fmt: skip
    try:
        run = _start_run(trigger, dry_run=False)
        if _live_runs(run.id, _lease_window(config), lower_ids_only=False, leased=True):
            return _skip(run, "a run started while Redis was down is still in progress")
        _close_interrupted_runs(run.id)
        return _execute(config, run, lock)
    finally:
        lock.release()


def _run_on_database_lease(config, trigger: str) -> ReconciliationRun:
    """Without Redis: insert our 'running' row, then go only if no older live run exists.

    Every run checks after its own row is committed, so of two racing runs at least the
    younger sees the older one and skips (at worst both skip); none overlaps.
    """
    run = _start_run(trigger, dry_run=False, note=DB_LEASE_NOTE)
    window = _lease_window(config)
    _close_interrupted_runs(run.id, started_before=utcnow() - window)
    if _live_runs(run.id, window, lower_ids_only=True, leased=False):
        return _skip(run, "another reconciliation run was in progress")
    return _execute(config, run, None)


def _start_run(trigger: str, *, dry_run: bool, note: str | None = None) -> ReconciliationRun:
    run = ReconciliationRun(
        trigger=trigger[:20], dry_run=dry_run, status=ReconciliationRun.STATUS_RUNNING,
        started_at=utcnow(), error_text=note,
    )  # fmt: skip
    db.session.add(run)
    db.session.commit()
    return run


def _execute(config, run: ReconciliationRun, lock: RunLock | None) -> ReconciliationRun:
    run_id, started, trigger, dry_run = run.id, run.started_at, run.trigger, run.dry_run
    renew_every = max(1.0, config["RECON_LOCK_TTL_SECONDS"] / 3)
    last_renewal = time.monotonic()

    def keep_alive() -> None:
        nonlocal last_renewal
        if lock is not None and time.monotonic() - last_renewal >= renew_every:
            lock.renew()
            last_renewal = time.monotonic()

    gate, tally = build_gate(config), Tally()
    deadline = time.monotonic() + config["RECON_MAX_RUN_SECONDS"]
    # One per Stripe mode, sharing the gate (one PSP account's rate) and the run's tally.
    reconcilers = [
        Reconciler(
            provider=get_provider(livemode=livemode),
            gate=gate,
            dry_run=dry_run,
            keep_alive=keep_alive,
            deadline=deadline,
            tally=tally,
            delayed_stale_after=timedelta(seconds=config["RECON_DELAYED_STALE_AFTER_SECONDS"]),
        )
        for livemode in modes_in_use()
    ]
    reconciler = reconcilers[0]
    lookback = timedelta(hours=config["RECON_LOOKBACK_HOURS"])
    stale_after = timedelta(seconds=config["RECON_STALE_AFTER_SECONDS"])
    status = ReconciliationRun.STATUS_SUCCEEDED
    error_text = None
    log.info("recon run %s started (trigger=%s, dry_run=%s)", run_id, trigger, dry_run)
    try:
        since = events_since(started, lookback)
        db.session.commit()
        for mode in reconcilers:
            _phase(mode, "events", partial(mode.catch_up_events, since))
        for mode in reconcilers:
            _phase(
                mode,
                "payments",
                partial(mode.check_stale_payments, stale_after, since=started - lookback),
            )
        _phase(
            reconciler, "sessions", lambda: _compare_sessions(config, reconcilers, run_id, started)
        )
        _phase(reconciler, "refunds", lambda: check_refunds(reconciler, stale_after))
        _phase(reconciler, "subscriptions", lambda: reconcile_subscriptions(reconciler))
    except LockLost as exc:
        status, error_text = ReconciliationRun.STATUS_FAILED, str(exc)
        log.error("recon run %s stopped: %s", run_id, exc)
    except Exception as exc:  # recorded on the run, and re-raised by the job if it wants
        db.session.rollback()
        status, error_text = ReconciliationRun.STATUS_FAILED, describe_error(exc)
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


def modes_in_use() -> list[bool]:
    """The configured Stripe modes that can have payments: those with an API key of their mode
    (revoked ones too: their payments stay). A mode without one has nothing of PayBridge's to
    reconcile; listing it would only spend PSP calls. At least one mode, for the run's record."""
    configured = configured_modes()
    used = set(db.session.scalars(select(ApiKey.livemode).distinct()))
    db.session.commit()
    return [mode for mode in configured if mode in used] or configured[:1]


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
        "sessions_from": tally.sessions_from.isoformat(sep=" ") if tally.sessions_from else None,
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
    RECON_ERRORS.inc(tally.errors)
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
        provider=get_provider(payment.psp, livemode=payment.livemode),
        gate=build_gate(current_app.config),
        dry_run=dry_run,
    )
    log.info("recon: payment %s checked on demand (trigger=%s)", payment.public_id, trigger)
    entry = reconciler.check_payment(payment_id)
    entry["refunds"] = check_payment_refunds(payment_id, gate=reconciler.gate, dry_run=dry_run)
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
