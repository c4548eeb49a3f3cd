"""The overview's money and rates over a period of the merchant's days, beside the previous
period of the same length.

Per currency, never added across currencies:
- gross: payments created in the period that were paid (SUCCESS), at their full amount;
- refunded: refunds that succeeded, counted when they were made (created) in the period;
- disputed: chargebacks whose funds the PSP withdrew in the period, on the day it did (an
  inquiry moves no money and counts nowhere);
- reinstated: funds of won disputes the PSP gave back in the period, on the day it did;
- net: gross − refunded − disputed + reinstated.

Each table is read once, in one aggregate query over both periods grouped into day buckets (see
`_bucket`), through the index that leads with merchant and mode and then the time: the
payments' (volumes, counts, rates, failure reasons and methods), the refunds' and the
disputes'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, literal_column, select, text
from sqlalchemy.sql.elements import ColumnElement

from app.common import payment_methods as methods
from app.common.tenancy import scoped
from app.extensions import db
from app.models import Dispute, Payment, PaymentRollup, PaymentStatus, Refund
from app.models.base import merchant_indexes_only
from app.models.payment import CANCELED_FAILURE_REASONS
from app.models.refund import RefundStatus
from app.reporting import rollup
from app.reporting.modes import in_mode
from app.reporting.periods import Period
from app.reporting.queries import DayStats

# Rows of the previous period after the time it is compared until fall in this bucket: read
# (they are inside the one index range) but not counted.
NOT_COUNTED = -1


@dataclass
class Money:
    """One currency's figures of one period, in minor units."""

    gross: int = 0
    refunded: int = 0
    disputed: int = 0
    reinstated: int = 0
    paid_count: int = 0
    refund_count: int = 0
    dispute_count: int = 0
    reinstated_count: int = 0

    @property
    def net(self) -> int:
        return self.gross - self.refunded - self.disputed + self.reinstated


@dataclass
class CurrencyFigures:
    currency: str
    current: Money = field(default_factory=Money)
    previous: Money = field(default_factory=Money)


@dataclass
class Counts:
    """How many payments of a period were started (created), paid, failed (declined, expired,
    rejected) and canceled (by the shopper or merchant: not a failure)."""

    started: int = 0
    paid: int = 0
    failed: int = 0
    canceled: int = 0
    # Tries to pay (rows of payment_attempts) on the period's payments, and those accepted.
    attempts: int = 0
    attempts_succeeded: int = 0

    @property
    def conversion(self) -> float | None:
        """Paid ÷ started: how many shoppers sent to pay did."""
        return rate(self.paid, self.started)

    @property
    def authorization(self) -> float | None:
        """Accepted attempts ÷ all attempts: how many tries to pay were authorized, as Stripe
        defines its authorization rate (a shopper's second try after a decline is a second
        attempt; a shopper who never tried makes none)."""
        return rate(self.attempts_succeeded, self.attempts)


@dataclass
class Reason:
    """How many payments failed for one reason (None: failed before reasons were recorded)."""

    code: str | None
    count: int = 0
    previous: int = 0


@dataclass
class Method:
    """How shoppers paid the period's paid payments: a method type, and the brand of a card."""

    method_type: str | None
    card_brand: str | None
    count: int = 0
    amounts: dict[str, int] = field(default_factory=dict)  # per currency, never added

    @property
    def label(self) -> str:
        return methods.name(self.method_type, self.card_brand) or "Not recorded"


@dataclass
class Figures:
    period: Period
    previous: Period
    compared_until: datetime  # naive UTC: where the previous period's figures stop
    currencies: list[CurrencyFigures]
    days: list[DayStats]
    counts: Counts
    previous_counts: Counts
    failure_reasons: list[Reason]
    methods: list[Method]


def rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def change(current: float | None, previous: float | None) -> float | None:
    """The change from `previous` to `current` as a fraction (0.25: +25 %); None when there is
    nothing to compare with (no previous figure, or a previous zero)."""
    if current is None or previous is None or previous == 0:
        return None
    return (current - previous) / abs(previous)


def _buckets(period: Period, until: datetime) -> tuple[list[datetime], list[int]]:
    """Sorted boundaries from the previous period's start to this period's end, and the
    bucket number of each interval between two: day i of this period is i, day i of the
    previous one is -(i + 2), and its rows after `until` are NOT_COUNTED."""
    bounds: list[datetime] = []
    numbers: list[int] = []
    for i, start in enumerate(period.previous().day_starts()[:-1]):
        if start >= until:
            break
        bounds.append(start)
        numbers.append(-(i + 2))
    bounds.append(min(until, period.start))
    numbers.append(NOT_COUNTED)
    for i, start in enumerate(period.day_starts()[:-1]):
        bounds.append(start)
        numbers.append(i)
    bounds.append(period.end)
    return bounds, numbers


def _bucket(column, bounds: list[datetime], numbers: list[int]) -> ColumnElement:
    """A CASE that gives each row (bounds[0] <= column < bounds[-1]) its bucket number, as a
    balanced tree of comparisons (one rule with the rollup's buckets)."""
    return rollup.bucket_number(column, bounds, numbers)


def _day_of(bucket) -> tuple[bool, int] | None:
    """(in this period, day number) of a bucket; None for rows not counted."""
    bucket = int(bucket)
    if bucket == NOT_COUNTED:
        return None
    return (True, bucket) if bucket >= 0 else (False, -bucket - 2)


def figures(*, merchant_id: int | None, livemode: bool, period: Period, now: datetime) -> Figures:
    """Gross, refunded, disputed and net per currency, and payment counts per day, of a
    period and of the previous one (until the same time while this one runs)."""
    until = period.compared_until(now)
    bounds, numbers = _buckets(period, until)

    def grouped(model, time_col, keys, totals, where=()):
        """One aggregate over both periods: (bucket, *keys, *totals) rows."""
        bucket = _bucket(time_col, bounds, numbers).label("bucket")
        stmt = (
            select(bucket, *keys, *totals)
            .select_from(model)
            .where(time_col >= bounds[0], time_col < bounds[-1], *where)
            .group_by(literal_column("bucket"), *keys)
            # The buckets come back in any order (they are summed here): MariaDB would sort a
            # GROUP BY's rows otherwise.
            .order_by(text("NULL"))
        )
        stmt = in_mode(scoped(stmt, model, merchant_id), model, livemode)
        if merchant_id is not None:  # never an index of every merchant (bench reads)
            stmt = merchant_indexes_only(stmt, model)
        return db.session.execute(stmt)

    days = [DayStats(d) for d in period.days]
    per_currency: dict[str, CurrencyFigures] = {}
    counts, previous_counts = Counts(), Counts()

    def money(currency: str, current: bool) -> Money:
        figures_ = per_currency.setdefault(currency, CurrencyFigures(currency))
        return figures_.current if current else figures_.previous

    reasons: dict[str | None, Reason] = {}
    methods: dict[tuple, Method] = {}
    # One read of the period's payments for every payment figure: the failure reason is set on
    # FAILED ones only; the methods chart reads paid ones' (an unpaid one names the card it was
    # declined with, which counts nowhere here).
    for (
        bucket,
        currency,
        status,
        code,
        method_type,
        brand,
        count,
        amount,
        tries,
        accepted,
    ) in _payment_groups(grouped, merchant_id, livemode, bounds):
        where = _day_of(bucket)
        if where is None:
            continue
        current, day = where
        count, amount = int(count), int(amount)
        tally = counts if current else previous_counts
        tally.started += count
        tally.attempts += int(tries or 0)
        tally.attempts_succeeded += int(accepted or 0)
        if status == PaymentStatus.SUCCESS.value:
            tally.paid += count
            m = money(currency, current)
            m.gross += amount
            m.paid_count += count
            if current:
                card_brand = brand if method_type == "card" else None
                key = (method_type, card_brand)
                method = methods.setdefault(key, Method(method_type, card_brand))
                method.count += count
                method.amounts[currency] = method.amounts.get(currency, 0) + amount
        elif status == PaymentStatus.FAILED.value and code in CANCELED_FAILURE_REASONS:
            tally.canceled += count
        elif status == PaymentStatus.FAILED.value:
            tally.failed += count
            reason = reasons.setdefault(code, Reason(code))
            if current:
                reason.count += count
            else:
                reason.previous += count
        if current:
            stats = days[day]
            stats.total += count
            if status == PaymentStatus.SUCCESS.value:
                stats.succeeded += count
                stats.amounts[currency] = stats.amounts.get(currency, 0) + amount
            elif status == PaymentStatus.FAILED.value and code in CANCELED_FAILURE_REASONS:
                stats.canceled += count
            elif status == PaymentStatus.FAILED.value:
                stats.failed += count

    for bucket, currency, count, amount in grouped(
        Refund,
        Refund.created_at,
        (Refund.currency,),
        (func.count(Refund.id), func.coalesce(func.sum(Refund.amount), 0)),
        where=(Refund.status == RefundStatus.SUCCEEDED.value,),
    ):
        where = _day_of(bucket)
        if where is not None:
            m = money(currency, where[0])
            m.refunded += int(amount)
            m.refund_count += count

    # Money moves when the PSP withdraws a chargeback's funds and when it reinstates a won
    # one's: each counted on its own day (inquiries never have either).
    for moved_at, withdrawn in (
        (Dispute.funds_withdrawn_at, True),
        (Dispute.funds_reinstated_at, False),
    ):
        for bucket, currency, count, amount in grouped(
            Dispute,
            moved_at,
            (Dispute.currency,),
            (func.count(Dispute.id), func.coalesce(func.sum(Dispute.amount), 0)),
        ):
            where = _day_of(bucket)
            if where is None:
                continue
            m = money(currency, where[0])
            if withdrawn:
                m.disputed += int(amount)
                m.dispute_count += count
            else:
                m.reinstated += int(amount)
                m.reinstated_count += count

    ordered = sorted(
        per_currency.values(), key=lambda f: (-f.current.gross, -f.previous.gross, f.currency)
    )
    return Figures(
        period=period,
        previous=period.previous(),
        compared_until=until,
        currencies=ordered,
        days=days,
        counts=counts,
        previous_counts=previous_counts,
        failure_reasons=sorted(
            (r for r in reasons.values() if r.count or r.previous),
            key=lambda r: (-r.count, r.code or "~"),
        ),
        methods=sorted(methods.values(), key=lambda m: (-m.count, m.label.casefold())),
    )


def _payment_groups(grouped, merchant_id: int | None, livemode: bool, bounds: list[datetime]):
    """(bucket, currency, status, failure reason, method type, card brand, count, amount,
    attempts, attempts succeeded) groups of the range's payments: from the rollup,
    except the 15-minute buckets
    it may not have right yet (payments changed since its watermark, the bucket the comparison
    cut falls in), read from the payments themselves; all of it live until a first rebuild."""
    keys = (
        Payment.currency,
        Payment.status,
        Payment.failure_reason,
        Payment.method_type,
        Payment.card_brand,
    )
    totals = (
        func.count(Payment.id),
        func.coalesce(func.sum(Payment.amount), 0),
        *rollup.attempt_totals(),
    )
    live = rollup.live_buckets(
        merchant_id=merchant_id, livemode=livemode, start=bounds[0], end=bounds[-1]
    )
    if live is None:
        yield from grouped(Payment, Payment.created_at, keys, totals)
        return
    live |= {rollup.bucket_of(b) for b in bounds if not rollup.is_aligned(b)}
    ranges = rollup.bucket_ranges(live)
    rolled = PaymentRollup
    not_live = (~rollup.in_ranges(rolled.bucket_start, ranges),) if ranges else ()
    for row in grouped(
        rolled,
        rolled.bucket_start,
        (
            rolled.currency,
            rolled.status,
            rolled.failure_reason,
            rolled.method_type,
            rolled.card_brand,
        ),
        (
            func.sum(rolled.payments),
            func.sum(rolled.amount),
            func.sum(rolled.attempts),
            func.sum(rolled.attempts_succeeded),
        ),
        where=not_live,
    ):
        bucket, currency, status, code, method_type, brand, *figures_ = row
        yield (
            bucket,
            currency,
            status,
            code or None,
            method_type or None,
            brand or None,
            *figures_,
        )
    if ranges:
        yield from grouped(
            Payment,
            Payment.created_at,
            keys,
            totals,
            where=(rollup.in_ranges(Payment.created_at, ranges),),
        )
