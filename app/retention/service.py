"""Purging old records in small batches, beside live traffic.

What goes, and when (KINDS; ages are settings, 0 keeps a kind forever):
- idempotency_keys: completed keys older than IDEMPOTENCY_RETENTION_HOURS (≥ 24 h, as Stripe
  honours a key). A key still in progress or retryable stays: its payment is unfinished.
- notifications, with their deliveries and attempts: delivered (or unrouted: sent to no
  endpoint) ones older than RETENTION_NOTIFICATIONS_DAYS,
  and never before EVENTS_RETENTION_DAYS (each is an event the Events API serves that long).
  A pending (retrying) or failed one stays whatever its age, until it is delivered.
- notification_endpoint_tests (test events, with the request and response bodies they hold):
  older than RETENTION_NOTIFICATIONS_DAYS, as a delivered notification's attempts; with no
  EVENTS_RETENTION_DAYS floor, since a test event is never an event of the Events API.
- psp_events: older than RETENTION_PSP_EVENTS_DAYS (≥ 30: Stripe resends an event for 3 days
  and lists it for 30), except those an open conflict names, which its operator settles from.
  No row points at an event by foreign key: status history rows and conflicts keep the event's
  PSP id as text, so a payment's page and history stay whole, listing the events still kept.
- reconciliation_runs, with their details: finished runs older than RETENTION_RECON_RUNS_DAYS,
  except the two the next run starts from (the newest successful real run, since which missed
  events are caught up, and the run holding the wide pass's watermark).
Payments, their status history, refunds, subscriptions, conflicts and the audit log are kept.

How, so that the live paths never wait on it: a pass walks a table in primary-key order, a
window of RETENTION_BATCH_SIZE rows at a time (a plain read: no lock, no secondary index), and
deletes the window's purgeable rows by primary key in a short transaction of its own, on a
connection that locks only those rows (READ COMMITTED on MySQL/MariaDB: no gap locks that would
hold up inserts). They are old rows no live path writes; the rule is checked again in the
DELETE, so a row that changed in between stays. Rows are stamped when inserted, so their age
follows the primary key (up to the clocks of the hosts that wrote them): a pass ends at the
first window holding no old row.

One purge runs at a time (a Redis lock; without Redis a purge runs anyway, as two at once are
still correct: they only delete the same old rows).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, Connection, and_, delete, func, or_, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import InstrumentedAttribute

from app.common.locks import is_lock_conflict, row_locks_only_connection
from app.extensions import get_redis
from app.metrics import RETENTION_PURGED
from app.models import (
    EndpointTestEvent,
    IdempotencyRecord,
    Notification,
    NotificationAttempt,
    NotificationDelivery,
    PaymentConflict,
    PspEvent,
    ReconciliationRun,
    utcnow,
)
from app.reconciliation.lock import LockLost, RunLock

log = logging.getLogger(__name__)

LOCK_TTL_SECONDS = 120


# -- what may go ---------------------------------------------------------------------------------


def _completed_keys(_conn: Connection, cutoff: datetime) -> ColumnElement[bool]:
    return and_(
        IdempotencyRecord.created_at < cutoff,
        IdempotencyRecord.state == IdempotencyRecord.STATE_COMPLETED,
    )


def _delivered_notifications(_conn: Connection, cutoff: datetime) -> ColumnElement[bool]:
    """Delivered to every endpoint before the cutoff, or sent to none (unrouted)."""
    return and_(
        Notification.created_at < cutoff,
        or_(
            and_(
                Notification.status == Notification.STATUS_DELIVERED,
                Notification.delivered_at < cutoff,
            ),
            Notification.status == Notification.STATUS_UNROUTED,
        ),
    )


def _sent_test_events(_conn: Connection, cutoff: datetime) -> ColumnElement[bool]:
    return EndpointTestEvent.sent_at < cutoff


def _events_no_open_conflict_names(_conn: Connection, cutoff: datetime) -> ColumnElement[bool]:
    named_by_open_conflicts = select(PaymentConflict.psp_event_id).where(
        PaymentConflict.resolved_at.is_(None), PaymentConflict.psp_event_id.is_not(None)
    )
    return and_(PspEvent.received_at < cutoff, PspEvent.event_id.not_in(named_by_open_conflicts))


def _runs_no_run_starts_from(conn: Connection, cutoff: datetime) -> ColumnElement[bool]:
    real = ReconciliationRun.dry_run.is_(False)
    newest_succeeded = conn.scalar(
        select(ReconciliationRun.id)
        .where(real, ReconciliationRun.status == ReconciliationRun.STATUS_SUCCEEDED)
        .order_by(ReconciliationRun.started_at.desc())
        .limit(1)
    )
    watermark = ReconciliationRun.sessions_compared_until
    watermark_holder = conn.scalar(
        select(ReconciliationRun.id)
        .where(real, watermark.is_not(None))
        .order_by(watermark.desc())
        .limit(1)
    )
    conn.commit()
    anchors = [run_id for run_id in (newest_succeeded, watermark_holder) if run_id is not None]
    return and_(
        ReconciliationRun.started_at < cutoff,
        ReconciliationRun.status != ReconciliationRun.STATUS_RUNNING,
        ReconciliationRun.id.not_in(anchors),
    )


@dataclass(frozen=True)
class Kind:
    """One kind of record retention purges."""

    model: Any  # a mapped class
    age: InstrumentedAttribute  # stamped when the row is inserted: follows the primary key
    setting: str  # the config key of how long it is kept (0: forever)
    unit: timedelta  # one unit of that setting
    purgeable: Callable[[Connection, datetime], ColumnElement[bool]]  # which rows, by cutoff
    children: tuple[InstrumentedAttribute, ...] = ()  # foreign keys of rows that go with it
    # A setting (same unit) that keeps the rows at least as long, whatever `setting` says.
    at_least: str | None = None

    @property
    def table(self) -> str:
        return self.model.__tablename__

    def _amount(self, config) -> int:
        amount = config[self.setting]
        if amount == 0 or self.at_least is None:
            return amount
        return max(amount, config[self.at_least])

    def kept_for(self, config) -> str:
        amount = self._amount(config)
        if amount == 0:
            return "forever"
        return f"{amount} h" if self.unit == timedelta(hours=1) else f"{amount} days"

    def cutoff(self, config, now: datetime) -> datetime | None:
        amount = self._amount(config)
        return None if amount == 0 else now - amount * self.unit


KINDS: tuple[Kind, ...] = (
    Kind(
        IdempotencyRecord,
        IdempotencyRecord.created_at,
        "IDEMPOTENCY_RETENTION_HOURS",
        timedelta(hours=1),
        _completed_keys,
    ),
    Kind(
        Notification,
        Notification.created_at,
        "RETENTION_NOTIFICATIONS_DAYS",
        timedelta(days=1),
        _delivered_notifications,
        # Attempts name their delivery: they go first.
        children=(NotificationAttempt.notification_id, NotificationDelivery.notification_id),
        # A notification is an event a client may still pull through the Events API.
        at_least="EVENTS_RETENTION_DAYS",
    ),
    Kind(
        EndpointTestEvent,
        EndpointTestEvent.sent_at,
        "RETENTION_NOTIFICATIONS_DAYS",
        timedelta(days=1),
        _sent_test_events,
    ),
    Kind(
        PspEvent,
        PspEvent.received_at,
        "RETENTION_PSP_EVENTS_DAYS",
        timedelta(days=1),
        _events_no_open_conflict_names,
    ),
    Kind(
        ReconciliationRun,
        ReconciliationRun.started_at,
        "RETENTION_RECON_RUNS_DAYS",
        timedelta(days=1),
        _runs_no_run_starts_from,
    ),
)


# -- the purge -----------------------------------------------------------------------------------


@dataclass
class PurgeReport:
    dry_run: bool
    # Rows deleted (or, on a dry run, that would be) per table, child tables included.
    rows: dict[str, int] = field(default_factory=dict)
    kept_for: dict[str, str] = field(default_factory=dict)  # per kind: "48 h", "forever"
    finished: bool = True  # False: stopped at its time budget; the next purge continues
    skipped: bool = False  # another purge held the lock

    def add(self, table: str, count: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + count


@dataclass
class _Pace:
    """What every batch of one purge shares: its size, the pause after it, the time budget,
    and the lock to keep renewed."""

    batch_size: int
    pause_seconds: float
    deadline: float | None
    lock: RunLock | None
    renewed_at: float = field(default_factory=time.monotonic)

    def may_go_on(self) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return False
        if self.lock is not None and time.monotonic() - self.renewed_at >= LOCK_TTL_SECONDS / 3:
            try:
                self.lock.renew()
            except (LockLost, RedisError) as exc:
                log.warning("retention: stopping, the purge lock is lost (%s)", exc)
                return False
            self.renewed_at = time.monotonic()
        return True


def purge(*, dry_run: bool = False, max_seconds: float | None = None) -> PurgeReport:
    """Purge every kind of record past its age (see the module's docstring); a dry run counts
    what would go and deletes nothing. Stops after `max_seconds` (the next purge continues)."""
    config = current_app.config
    report = PurgeReport(dry_run=dry_run)
    lock = None if dry_run else _take_lock(config)
    if lock is not None and not lock.held:
        log.info("retention: another purge holds the lock; this one is skipped")
        report.skipped = True
        return report
    pace = _Pace(
        batch_size=config["RETENTION_BATCH_SIZE"],
        pause_seconds=0.0 if dry_run else config["RETENTION_BATCH_PAUSE_SECONDS"],
        deadline=None if max_seconds is None else time.monotonic() + max_seconds,
        lock=lock,
    )
    now = utcnow()
    try:
        with row_locks_only_connection() as conn:
            for kind in KINDS:
                report.kept_for[kind.table] = kind.kept_for(config)
                cutoff = kind.cutoff(config, now)
                if cutoff is None:
                    continue
                if not _purge_kind(conn, kind, cutoff, pace, report):
                    report.finished = False
                    break
    finally:
        if lock is not None:
            lock.release()
    verb = "would purge" if dry_run else "purged"
    log.info(
        "retention: %s %s%s",
        verb,
        ", ".join(f"{n} {table}" for table, n in report.rows.items()) or "nothing",
        "" if report.finished else " (stopped at its time budget; the next purge continues)",
    )
    return report


def _take_lock(config) -> RunLock | None:
    """The purge lock, held or not; None when Redis cannot be asked (purge anyway)."""
    lock = RunLock(
        get_redis(),
        LOCK_TTL_SECONDS,
        key=f"{config['RQ_QUEUE_PREFIX']}:retention:run-lock",
    )
    try:
        lock.acquire()
    except RedisError as exc:
        log.warning("retention: Redis unreachable (%s); purging without the lock", exc)
        return None
    return lock


def _purge_kind(
    conn: Connection, kind: Kind, cutoff: datetime, pace: _Pace, report: PurgeReport
) -> bool:
    """Walk one table in primary-key windows, purging each window's purgeable rows; False
    when the time budget or the lock ran out first."""
    purgeable = kind.purgeable(conn, cutoff)
    pk = kind.model.__table__.c.id
    window_query = (
        select(pk, kind.age, purgeable.label("purgeable")).order_by(pk).limit(pace.batch_size)
    )
    after = None
    for table in (kind.table, *(fk.table.name for fk in kind.children)):
        report.add(table, 0)
    while True:
        query = window_query if after is None else window_query.where(pk > after)
        window = conn.execute(query).all()
        conn.commit()  # a read of its own: nothing held between batches
        if not window:
            return True
        after = window[-1][0]
        ids = [row[0] for row in window if row[2]]
        if ids:
            _purge_batch(conn, kind, ids, purgeable, report)
            if pace.pause_seconds:
                time.sleep(pace.pause_seconds)
        if len(window) < pace.batch_size or all(row[1] >= cutoff for row in window):
            return True  # a whole window of young rows: every row after it is younger still
        if not pace.may_go_on():
            return False


def _purge_batch(
    conn: Connection,
    kind: Kind,
    ids: list[int],
    purgeable: ColumnElement[bool],
    report: PurgeReport,
) -> None:
    """Delete (or, on a dry run, count) these rows and their children in one short
    transaction. A lock conflict or a child written meanwhile leaves the batch to the next
    purge: the live path wins."""
    table = kind.model.__table__
    pk = table.c.id
    counts: dict[str, int] = {}
    try:
        if report.dry_run:
            for fk in kind.children:
                counts[fk.table.name] = conn.scalar(select(func.count()).where(fk.in_(ids))) or 0
            counts[table.name] = len(ids)
        elif kind.children:
            # Lock the parents first (by primary key, and only those still purgeable), so no
            # child is deleted under a row that stays.
            ids = list(conn.scalars(select(pk).where(pk.in_(ids), purgeable).with_for_update()))
            if ids:
                for fk in kind.children:
                    deleted = conn.execute(delete(fk.table).where(fk.in_(ids)))
                    counts[fk.table.name] = deleted.rowcount
                counts[table.name] = conn.execute(delete(table).where(pk.in_(ids))).rowcount
        else:
            counts[table.name] = conn.execute(delete(table).where(pk.in_(ids), purgeable)).rowcount
        conn.commit()
    except (OperationalError, IntegrityError) as exc:
        conn.rollback()
        if isinstance(exc, OperationalError) and not is_lock_conflict(exc):
            raise
        log.info("retention: %s batch left for the next purge (%s)", kind.table, exc.orig)
        return
    for name, count in counts.items():
        report.add(name, count)
        if not report.dry_run:
            RETENTION_PURGED.labels(name).inc(count)
