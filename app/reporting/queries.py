"""Read-side queries for the dashboard pages, each scoped to one merchant (or all, for operators).

`merchant_id=None` means "every merchant" and is only ever passed for operators: the views
decide the scope from the logged-in user (app.blueprints.dashboard.shared), never from input a
merchant user controls. Lists and figures show one of Stripe's modes (`livemode`, see
app/reporting/modes.py); one object opened by its id is found in either, and says its mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.common.money import format_money
from app.common.tenancy import scoped
from app.extensions import db
from app.models import (
    FINAL_STATUSES,
    Merchant,
    Notification,
    NotificationDelivery,
    Payment,
    PaymentConflict,
    PaymentStatus,
    PspEvent,
    ReconciliationRun,
    Refund,
    utcnow,
)
from app.reporting.deliveries import failing_now
from app.reporting.modes import in_mode

LIST_PAGE_SIZE = 50
STUCK_AFTER = timedelta(hours=1)
NON_FINAL = [s.value for s in PaymentStatus if s not in FINAL_STATUSES]


def merchants() -> list[Merchant]:
    return list(db.session.scalars(select(Merchant).order_by(Merchant.name, Merchant.id)))


def get_merchant(merchant_id: int) -> Merchant | None:
    return db.session.get(Merchant, merchant_id)


# --- payment detail ---------------------------------------------------------------------------


def payment_by_public_id(public_id: str, *, merchant_id: int | None) -> Payment | None:
    """The payment if it exists inside the scope; another merchant's is simply not found."""
    stmt = select(Payment).where(Payment.public_id == public_id)
    stmt = scoped(stmt, Payment, merchant_id)
    return db.session.scalar(stmt)


@dataclass
class PaymentStory:
    payment: Payment
    history: list
    events: list[PspEvent]
    notifications: list[Notification]
    conflicts: list[PaymentConflict]
    refunds: list = field(default_factory=list)


def payment_story(payment: Payment) -> PaymentStory:
    """Everything the detail page shows about one payment, in time order."""
    events = list(
        db.session.scalars(
            select(PspEvent)
            .where(PspEvent.payment_id == payment.id)
            .order_by(PspEvent.received_at, PspEvent.id)
        )
    )
    notifications = list(
        db.session.scalars(
            select(Notification)
            .where(Notification.payment_id == payment.id)
            .options(selectinload(Notification.attempts))
            .order_by(Notification.id)
        )
    )
    conflicts = list(
        db.session.scalars(
            select(PaymentConflict)
            .where(PaymentConflict.payment_id == payment.id)
            .order_by(PaymentConflict.id)
        )
    )
    return PaymentStory(
        payment=payment,
        history=list(payment.history),
        events=events,
        notifications=notifications,
        conflicts=conflicts,
        refunds=_refunds(payment),
    )


def _refunds(payment: Payment) -> list[Refund]:
    return list(
        db.session.scalars(
            select(Refund).where(Refund.payment_id == payment.id).order_by(Refund.id)
        )
    )


def payment_conflict(payment: Payment, conflict_id: int) -> PaymentConflict | None:
    """One of this payment's conflicts; another payment's is not found."""
    conflict = db.session.get(PaymentConflict, conflict_id)
    return conflict if conflict is not None and conflict.payment_id == payment.id else None


def notification_in_scope(notification_id: int, *, merchant_id: int | None) -> Notification | None:
    stmt = select(Notification).where(Notification.id == notification_id)
    stmt = scoped(stmt, Notification, merchant_id)
    return db.session.scalar(stmt)


# --- overview ---------------------------------------------------------------------------------


@dataclass
class DayStats:
    """One day of the overview (a local day of the merchant's zone)."""

    day: date
    total: int = 0
    succeeded: int = 0
    failed: int = 0  # declined, expired or rejected: not canceled
    canceled: int = 0  # by the shopper or the merchant: a decision, not a failure
    amounts: dict[str, int] = field(default_factory=dict)  # successful amount per currency


@dataclass
class Attention:
    """What needs someone's attention now, whatever the overview's period."""

    stuck_count: int
    stuck: list[Payment]
    failed_notifications_count: int
    failed_notifications: list[Notification]
    failed_within_days: int  # a delivery that gave up counts this long (then: the log)
    open_conflicts_count: int
    open_conflicts: list[PaymentConflict]


def attention(
    *,
    merchant_id: int | None,
    livemode: bool,
    failed_within_days: int,
    now: datetime | None = None,
) -> Attention:
    """Stuck payments, notifications failing now (a delivery that gave up counts for
    `failed_within_days`) and open conflicts of one mode: how many (capped) and the first few."""

    def in_view(stmt, model):
        return in_mode(scoped(stmt, model, merchant_id), model, livemode)

    now = now or utcnow()
    stuck_q = select(Payment).where(
        Payment.status.in_(NON_FINAL), Payment.updated_at < now - STUCK_AFTER
    )
    # Failing now: a delivery retrying after a failed attempt, or one that gave up lately (to an
    # endpoint not deleted); not only those that gave up (a merchant whose every delivery is
    # being retried must see it today), nor every failure ever (the figure must clear).
    failed_since = now - timedelta(days=failed_within_days)
    failing_deliveries = select(NotificationDelivery.notification_id).where(
        failing_now(failed_since)
    )
    failed_q = select(Notification).where(Notification.id.in_(failing_deliveries))
    conflicts_q = select(PaymentConflict).where(PaymentConflict.resolved_at.is_(None))
    stuck_q = in_view(stuck_q, Payment)
    failed_q = in_view(failed_q, Notification)
    conflicts_q = in_view(conflicts_q, PaymentConflict)

    return Attention(
        stuck_count=_count(stuck_q, Payment.id),
        stuck=_oldest_stuck(lambda stmt: in_view(stmt, Payment), now - STUCK_AFTER),
        failed_notifications_count=_count(failed_q, Notification.id),
        failed_within_days=failed_within_days,
        failed_notifications=list(
            db.session.scalars(
                failed_q.options(selectinload(Notification.payment))
                .order_by(Notification.id.desc())
                .limit(10)
            )
        ),
        open_conflicts_count=_count(conflicts_q, PaymentConflict.id),
        open_conflicts=list(
            db.session.scalars(
                conflicts_q.options(selectinload(PaymentConflict.payment))
                .order_by(PaymentConflict.id.desc())
                .limit(10)
            )
        ),
    )


def _oldest_stuck(in_view, cutoff: datetime, limit: int = 10) -> list[Payment]:
    """The longest-stuck payments in view: one index-ordered LIMIT per status, merged here,
    instead of one query that must sort every stuck payment of every status."""
    found: list[Payment] = []
    for status in NON_FINAL:
        stmt = select(Payment).where(Payment.status == status, Payment.updated_at < cutoff)
        stmt = in_view(stmt)
        found.extend(db.session.scalars(stmt.order_by(Payment.updated_at).limit(limit)))
    return sorted(found, key=lambda p: p.updated_at)[:limit]


# Attention counters stop counting here ("1000+"): the landing page stays fast even when
# something has gone badly wrong and a whole day of payments is stuck.
COUNT_CAP = 1000


def _count(stmt, key) -> int:
    """COUNT(*) of at most COUNT_CAP + 1 rows, reading only the index (`key` = primary key)."""
    capped = stmt.with_only_columns(key).limit(COUNT_CAP + 1)
    return db.session.scalar(select(func.count()).select_from(capped.subquery())) or 0


# --- webhook events ---------------------------------------------------------------------------

EVENT_OUTCOMES = [
    PspEvent.OUTCOME_APPLIED,
    PspEvent.OUTCOME_IGNORED,
    PspEvent.OUTCOME_UNKNOWN_SESSION,
    PspEvent.OUTCOME_UNKNOWN_DISPUTE,
    PspEvent.OUTCOME_MISMATCH,
    PspEvent.OUTCOME_MODE_MISMATCH,
    PspEvent.OUTCOME_CONFLICT,
    PspEvent.OUTCOME_UNHANDLED,
]


def events(
    *,
    merchant_id: int | None,
    livemode: bool,
    outcome: str | None = None,
    event_type: str | None = None,
    before_id: int | None = None,
) -> list[PspEvent]:
    """PSP events of one mode (the one the PSP says each is in), newest first. A merchant sees
    the events tied to its own payments only; events that matched no payment are an operator's
    business."""
    stmt = in_mode(select(PspEvent), PspEvent, livemode)
    stmt = (
        stmt.options(selectinload(PspEvent.payment))
        .order_by(PspEvent.id.desc())
        .limit(LIST_PAGE_SIZE + 1)
    )
    if merchant_id is not None:  # an event belongs to the merchant of its payment
        stmt = scoped(stmt.join(Payment, Payment.id == PspEvent.payment_id), Payment, merchant_id)
    if outcome:
        stmt = stmt.where(PspEvent.outcome == outcome)
    if event_type:
        stmt = stmt.where(PspEvent.event_type == event_type)
    if before_id:
        stmt = stmt.where(PspEvent.id < before_id)
    return list(db.session.scalars(stmt))


def event_types() -> list[str]:
    return list(
        db.session.scalars(select(PspEvent.event_type).distinct().order_by(PspEvent.event_type))
    )


def event_in_scope(event_id: int, *, merchant_id: int | None) -> PspEvent | None:
    stmt = select(PspEvent).where(PspEvent.id == event_id)
    if merchant_id is not None:  # an event belongs to the merchant of its payment
        stmt = scoped(stmt.join(Payment, Payment.id == PspEvent.payment_id), Payment, merchant_id)
    return db.session.scalar(stmt)


# --- reconciliation runs ----------------------------------------------------------------------


def recon_runs(*, before_id: int | None = None) -> list[ReconciliationRun]:
    stmt = select(ReconciliationRun).order_by(ReconciliationRun.id.desc()).limit(LIST_PAGE_SIZE + 1)
    if before_id:
        stmt = stmt.where(ReconciliationRun.id < before_id)
    return list(db.session.scalars(stmt))


def recon_run(run_id: int) -> ReconciliationRun | None:
    return db.session.get(ReconciliationRun, run_id)


def recon_details_for(
    run: ReconciliationRun, *, merchant_id: int | None, livemode: bool
) -> list[dict]:
    """The run's lines about payments of one mode; a merchant user only sees lines about its
    own payments, an operator also the lines about no payment (the run's own)."""
    details = [d for d in (run.details or []) if isinstance(d, dict)]
    ids = {d.get("payment") for d in details if d.get("payment")}
    shown: set = set()
    if ids:
        stmt = select(Payment.public_id).where(Payment.public_id.in_(ids))
        stmt = in_mode(scoped(stmt, Payment, merchant_id), Payment, livemode)
        shown = set(db.session.scalars(stmt))
    return [
        d
        for d in details
        if d.get("payment") in shown or (merchant_id is None and not d.get("payment"))
    ]


def refund_timeline(refunds: list[Refund]) -> list[dict]:
    """Every refund's request and outcome, oldest first, for the payment's timeline."""
    entries = []
    for r in refunds:
        money = format_money(r.amount, r.currency)
        entries.append(
            {
                "at": r.created_at,
                "refund": r,
                "status": "pending",
                "text": f"Refund {r.public_id} of {money} requested ({r.source})",
            }
        )
        if r.completed_at is not None:
            text = f"Refund {r.public_id} of {money} {r.status}"
            if r.failure_reason:
                text += f": {r.failure_reason}"
            entries.append({"at": r.completed_at, "refund": r, "status": r.status, "text": text})
    entries.sort(key=lambda e: (e["at"], e["refund"].id))
    return entries
