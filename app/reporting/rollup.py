"""The payments' rollup (app/models/rollup.py): kept by the worker, read by the overview.

The create and webhook paths write nothing for it. The worker finds what changed since its
watermark and recomputes each touched (merchant, mode, 15-minute bucket) fully from the
payments: it replaces the bucket's rows by what the payments say now, so a run is idempotent,
a second run (or `flask reporting rebuild`) over the same buckets changes nothing, and the
order in which changes arrive does not matter.

What changes a bucket's figures:
- a payment created or updated (status, failure reason, method): `updated_at` is stamped on
  every update (ORM onupdate, and the state machine), read through ix_payments_status_updated
  (status, updated_at): one index range per status, no index added to the write paths;
- an attempt on the hosted page (`attempts`, `attempts_succeeded`): a payment_attempts row,
  which does not always touch its payment; read by primary key after the last attempt folded
  in.

Late commits. `updated_at` is stamped when a transaction writes, not when it commits: a run
that reads "updated since W" at time T can miss a row stamped before T whose transaction
commits after T. So a run starting at T records T as its watermark and the next one reads from
T − ROLLUP_COMMIT_LAG_SECONDS: a transaction committing within the lag is read by a later run.
Attempts the same way: the watermark is the highest attempt id created more than the lag before
the run (a lower id was allocated earlier, so its transaction has committed too).

The overview reads the rollup for the buckets of its range and, for the buckets of payments
changed since the watermark less the lag (`live_buckets`), the payments themselves: the
figures are exact and current, the live part a few minutes of rows.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import and_, case, delete, func, insert, literal_column, or_, select, text
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db, get_redis
from app.models import (
    Payment,
    PaymentAttempt,
    PaymentRollup,
    PaymentStatus,
    RollupWatermark,
    utcnow,
)
from app.models.attempt import OUTCOME_SUCCEEDED
from app.models.base import index_hint
from app.reconciliation.lock import LockLost, RunLock

log = logging.getLogger(__name__)

BUCKET = timedelta(minutes=15)
_EPOCH = datetime(2000, 1, 1)
WATERMARK = "payments"
ALL_STATUSES = tuple(s.value for s in PaymentStatus)
# A run holds its lock this long without renewing it (it renews after every bucket batch).
LOCK_TTL_SECONDS = 300
# Buckets recomputed in one transaction: one index range of the payments each.
BUCKETS_PER_BATCH = 96
# A gap between buckets in the CASE of `bucket_number`: read (inside the index range) but not
# counted.
_GAP = -1


def bucket_of(moment: datetime) -> datetime:
    """The start of the 15-minute UTC bucket `moment` (naive UTC) falls in."""
    return moment - (moment - _EPOCH) % BUCKET


def is_aligned(moment: datetime) -> bool:
    return bucket_of(moment) == moment


def bucket_number(column, bounds: list[datetime], numbers: list[int]) -> ColumnElement:
    """A CASE that gives each row (bounds[0] <= column < bounds[-1]) its number, as a balanced
    tree of comparisons: log2(intervals) of them per row, not one per interval."""

    def tree(lo: int, hi: int) -> ColumnElement:  # intervals lo..hi-1
        if hi - lo == 1:
            return literal_column(str(numbers[lo]))
        mid = (lo + hi) // 2
        return case((column < bounds[mid], tree(lo, mid)), else_=tree(mid, hi))

    return tree(0, len(numbers))


def bucket_ranges(buckets: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Sorted buckets as [start, end) ranges, neighbours joined."""
    ranges: list[tuple[datetime, datetime]] = []
    for start in sorted(set(buckets)):
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], start + BUCKET)
        else:
            ranges.append((start, start + BUCKET))
    return ranges


def in_ranges(column, ranges: list[tuple[datetime, datetime]]) -> ColumnElement:
    """`column` inside one of the ranges: an index range each."""
    return or_(*(and_(column >= lo, column < hi) for lo, hi in ranges))


def attempt_totals() -> tuple[ColumnElement, ColumnElement]:
    """The sums, over a group of payments, of their attempts and of those that succeeded: two
    probes of ix_payment_attempts_payment per payment, never a join that repeats its rows."""

    def count(*where) -> ColumnElement:
        tries = select(func.count(PaymentAttempt.id)).where(
            PaymentAttempt.payment_id == Payment.id, *where
        )
        # By payment, however few attempts the optimizer thinks there are.
        tries = index_hint(tries, PaymentAttempt, "FORCE INDEX (ix_payment_attempts_payment)")
        return func.coalesce(func.sum(tries.scalar_subquery()), 0)

    return count(), count(PaymentAttempt.outcome == OUTCOME_SUCCEEDED)


# -- the watermark -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Watermark:
    updated_before: datetime
    attempts_through: int


def watermark() -> Watermark | None:
    """Where the rollup stands; None until a first rebuild (the overview then reads live)."""
    row = db.session.get(RollupWatermark, WATERMARK)
    return None if row is None else Watermark(row.updated_before, row.attempts_through)


def _commit_lag() -> timedelta:
    return timedelta(seconds=current_app.config["ROLLUP_COMMIT_LAG_SECONDS"])


def _attempts_settled_through(before: datetime, floor: int) -> int:
    """The highest attempt id created before `before` (at least `floor`): read backwards along
    the primary key from the newest, a few rows."""
    found = db.session.scalar(
        select(PaymentAttempt.id)
        .where(PaymentAttempt.id > floor, PaymentAttempt.created_at < before)
        .order_by(PaymentAttempt.id.desc())
        .limit(1)
    )
    return floor if found is None else int(found)


def _save_watermark(mark: Watermark) -> None:
    row = db.session.get(RollupWatermark, WATERMARK)
    if row is None:
        db.session.add(
            RollupWatermark(
                name=WATERMARK,
                updated_before=mark.updated_before,
                attempts_through=mark.attempts_through,
            )
        )
    else:
        row.updated_before = mark.updated_before
        row.attempts_through = mark.attempts_through
    db.session.commit()


# -- recomputing buckets -------------------------------------------------------------------------


def recompute(merchant_id: int, livemode: bool, buckets: Iterable[datetime]) -> int:
    """Replace the rollup rows of these buckets of one merchant and mode by what its payments
    say now, in one transaction; returns the rows written."""
    ranges = bucket_ranges(buckets)
    if not ranges:
        return 0
    bounds, numbers = [ranges[0][0]], []
    starts: list[datetime] = []
    for lo, hi in ranges:
        if bounds[-1] != lo:
            numbers.append(_GAP)
            bounds.append(lo)
        moment = lo
        while moment < hi:
            numbers.append(len(starts))
            starts.append(moment)
            moment += BUCKET
            bounds.append(moment)
    number = bucket_number(Payment.created_at, bounds, numbers).label("bucket")
    keys = (
        Payment.currency,
        Payment.status,
        Payment.failure_reason,
        Payment.method_type,
        Payment.card_brand,
    )
    rows = db.session.execute(
        select(
            number,
            *keys,
            func.count(Payment.id),
            func.coalesce(func.sum(Payment.amount), 0),
            *attempt_totals(),
        )
        .where(
            Payment.merchant_id == merchant_id,
            Payment.livemode == livemode,
            in_ranges(Payment.created_at, ranges),
        )
        .group_by(literal_column("bucket"), *keys)
        .order_by(text("NULL"))
    ).all()
    values = [
        {
            "merchant_id": merchant_id,
            "livemode": livemode,
            "bucket_start": starts[int(bucket)],
            "currency": currency,
            "status": status,
            "failure_reason": reason or "",
            "method_type": method_type or "",
            "card_brand": brand or "",
            "payments": count,
            "amount": int(amount),
            "attempts": int(tries),
            "attempts_succeeded": int(accepted),
        }
        for (
            bucket,
            currency,
            status,
            reason,
            method_type,
            brand,
            count,
            amount,
            tries,
            accepted,
        ) in rows
        if int(bucket) != _GAP
    ]
    db.session.execute(
        delete(PaymentRollup).where(
            PaymentRollup.merchant_id == merchant_id,
            PaymentRollup.livemode == livemode,
            in_ranges(PaymentRollup.bucket_start, ranges),
        )
    )
    if values:
        db.session.execute(insert(PaymentRollup), values)
    db.session.commit()
    return len(values)


def _recompute_all(touched: dict[tuple[int, bool], set[datetime]], lock: RunLock | None) -> int:
    written = 0
    for (merchant_id, livemode), buckets in sorted(touched.items()):
        ordered = sorted(buckets)
        for i in range(0, len(ordered), BUCKETS_PER_BATCH):
            written += recompute(merchant_id, livemode, ordered[i : i + BUCKETS_PER_BATCH])
            if lock is not None:
                lock.renew()
    return written


# -- the worker's run, and the operator's rebuild ------------------------------------------------


@dataclass
class RollupReport:
    skipped: bool = False  # another run held the lock
    buckets: int = 0
    rows: int = 0
    rebuilt: bool = False


def _take_lock() -> RunLock | None:
    """The rollup lock, held or not; None when Redis cannot be asked (run anyway: a bucket is
    replaced whole in one transaction, and the unique key keeps two runs from doubling it)."""
    lock = RunLock(
        get_redis(),
        LOCK_TTL_SECONDS,
        key=f"{current_app.config['RQ_QUEUE_PREFIX']}:rollup:run-lock",
    )
    try:
        lock.acquire()
    except RedisError as exc:
        log.warning("rollup: Redis unreachable (%s); running without the lock", exc)
        return None
    return lock


def refresh() -> RollupReport:
    """The worker's run: recompute the buckets touched since the watermark, then move it on.
    The first run (no watermark yet) rebuilds everything."""
    lock = _take_lock()
    if lock is not None and not lock.held:
        log.info("rollup: another run holds the lock; this one is skipped")
        return RollupReport(skipped=True)
    try:
        mark = watermark()
        if mark is None:
            return _rebuild(merchant_id=None, since=None, lock=lock)
        started = utcnow()
        since = mark.updated_before - _commit_lag()
        touched: dict[tuple[int, bool], set[datetime]] = defaultdict(set)
        changed = db.session.execute(
            select(Payment.merchant_id, Payment.livemode, Payment.created_at).where(
                Payment.status.in_(ALL_STATUSES), Payment.updated_at >= since
            )
        )
        for merchant_id, livemode, created_at in changed:
            touched[(merchant_id, bool(livemode))].add(bucket_of(created_at))
        tried = db.session.execute(
            select(Payment.merchant_id, Payment.livemode, Payment.created_at)
            .join(PaymentAttempt, PaymentAttempt.payment_id == Payment.id)
            .where(PaymentAttempt.id > mark.attempts_through)
        )
        for merchant_id, livemode, created_at in tried:
            touched[(merchant_id, bool(livemode))].add(bucket_of(created_at))
        attempts_through = _attempts_settled_through(started - _commit_lag(), mark.attempts_through)
        db.session.commit()
        report = RollupReport(buckets=sum(len(b) for b in touched.values()))
        report.rows = _recompute_all(touched, lock)
        _save_watermark(Watermark(started, attempts_through))
        log.info("rollup: %s buckets recomputed (%s rows)", report.buckets, report.rows)
        return report
    except LockLost as exc:
        log.warning("rollup: stopping, the lock is lost (%s); the next run does it again", exc)
        db.session.rollback()
        return RollupReport(skipped=True)
    finally:
        if lock is not None:
            lock.release()


def rebuild(*, merchant_id: int | None = None, since: datetime | None = None) -> RollupReport:
    """The operator's rebuild (`flask reporting rebuild`): recompute every bucket of a
    merchant (None: all) from `since` (None: its first payment) to now, a day at a time."""
    lock = _take_lock()
    if lock is not None and not lock.held:
        return RollupReport(skipped=True)
    try:
        return _rebuild(merchant_id=merchant_id, since=since, lock=lock)
    finally:
        if lock is not None:
            lock.release()


def _rebuild(
    *, merchant_id: int | None, since: datetime | None, lock: RunLock | None
) -> RollupReport:
    started = utcnow()
    mark = watermark()
    attempts_through = _attempts_settled_through(started - _commit_lag(), 0)
    scopes = select(
        Payment.merchant_id,
        Payment.livemode,
        func.min(Payment.created_at),
        func.max(Payment.created_at),
    ).group_by(Payment.merchant_id, Payment.livemode)
    if merchant_id is not None:
        scopes = scopes.where(Payment.merchant_id == merchant_id)
    report = RollupReport(rebuilt=True)
    for scope_merchant, livemode, first, last in db.session.execute(scopes).all():
        moment = bucket_of(max(first, since) if since else first)
        end = max(started, last) + BUCKET
        while moment < end:
            buckets = [moment + BUCKET * i for i in range(BUCKETS_PER_BATCH)]
            report.rows += recompute(scope_merchant, bool(livemode), buckets)
            report.buckets += len(buckets)
            moment += BUCKET * BUCKETS_PER_BATCH
            if lock is not None:
                lock.renew()
    if mark is None and merchant_id is None and since is None:
        # Everything updated before `started` (less the lag, re-read by the next run) is in.
        _save_watermark(Watermark(started, attempts_through))
    log.info("rollup: rebuilt %s buckets (%s rows)", report.buckets, report.rows)
    return report


# -- what the overview reads live ----------------------------------------------------------------

# More buckets changed than this since the watermark: the rollup is behind (a stopped
# worker), and the overview reads its whole range live rather than a long OR of ranges.
LIVE_BUCKETS_MAX = 400


def live_buckets(
    *, merchant_id: int | None, livemode: bool, start: datetime, end: datetime
) -> set[datetime] | None:
    """The buckets in [start, end) the rollup may not have right yet: those of payments
    created or changed, or tried, since the watermark less the commit lag. None: read the
    range live (no rollup yet, or too far behind)."""
    mark = watermark()
    if mark is None:
        return None
    since = mark.updated_before - _commit_lag()
    in_range = (Payment.created_at >= start, Payment.created_at < end, Payment.livemode == livemode)
    mine = () if merchant_id is None else (Payment.merchant_id == merchant_id,)
    limit = LIVE_BUCKETS_MAX * 50
    changed = (
        select(Payment.created_at)
        .where(Payment.status.in_(ALL_STATUSES), Payment.updated_at >= since, *in_range, *mine)
        .limit(limit)
    )
    tried = (
        select(Payment.created_at)
        .join(PaymentAttempt, PaymentAttempt.payment_id == Payment.id)
        .where(PaymentAttempt.id > mark.attempts_through, *in_range, *mine)
    )
    buckets: set[datetime] = set()
    for query in (changed, tried.limit(limit)):
        moments = db.session.scalars(query).all()
        buckets.update(bucket_of(created_at) for created_at in moments)
        if len(buckets) > LIVE_BUCKETS_MAX or len(moments) == limit:
            return None
    return buckets
