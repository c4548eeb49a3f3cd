"""The dashboard's dispute lists: what needs a response and can still get one (due soonest
first, also the banner's count), those whose due date passed unanswered, and every dispute,
newest first; one mode at a time, inside the tenancy scope.

A merchant's lists read ix_disputes_merchant_mode_status_due one status at a time (an IN over
the two statuses that need a response would sort every row it reads) and
ix_disputes_merchant_mode_id (0016_disputes, 0020_dispute_indexes)."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, islice

from sqlalchemy import func, or_, select
from sqlalchemy.orm import joinedload

from app.common.cursors import older_page
from app.common.tenancy import scoped
from app.extensions import db
from app.models import Dispute
from app.models.base import index_hint
from app.models.dispute import NEEDS_RESPONSE_STATUSES
from app.reporting.modes import in_mode

PAGE_SIZE = 50
# The page lists this many of those needing a response (the soonest due) and of those past
# due (the latest), and says how many need one in all: a merchant answers the next few first,
# and each row is a dispute and its payment loaded (at 100 the page took ~190 ms).
DUE_LIMIT = 20


@dataclass(frozen=True)
class DueDisputes:
    """What the banner says: how many disputes wait for an answer, and the soonest due."""

    count: int
    soonest_due: datetime | None


def _in_view(stmt, merchant_id: int | None, livemode: bool):
    return in_mode(scoped(stmt, Dispute, merchant_id), Dispute, livemode)


def _rows(merchant_id: int | None, livemode: bool):
    """Disputes in view, each with its payment (the lists show its reference): one query."""
    return _in_view(select(Dispute).options(joinedload(Dispute.payment)), merchant_id, livemode)


def dispute_in_scope(public_id: str, *, merchant_id: int | None) -> Dispute | None:
    """The dispute if it exists inside the scope; another merchant's is not found."""
    stmt = scoped(select(Dispute).where(Dispute.public_id == public_id), Dispute, merchant_id)
    return db.session.execute(stmt).scalar_one_or_none()


def disputes_due(merchant_id: int | None, *, livemode: bool, now: datetime) -> list[Dispute]:
    """Those waiting for the merchant's answer and still in time for it, due soonest first:
    each status read in its index's order, merged."""
    reads = [
        db.session.scalars(
            _rows(merchant_id, livemode)
            .where(Dispute.status == status, Dispute.evidence_due_by > now)
            .order_by(Dispute.evidence_due_by, Dispute.id)
            .limit(DUE_LIMIT)
        )
        for status in NEEDS_RESPONSE_STATUSES
    ]
    merged = heapq.merge(*reads, key=lambda d: (d.evidence_due_by, d.id))
    # With no due date given, still answerable (the PSP says no when it is not): last.
    undated = db.session.scalars(
        _rows(merchant_id, livemode)
        .where(Dispute.status.in_(NEEDS_RESPONSE_STATUSES), Dispute.evidence_due_by.is_(None))
        .order_by(Dispute.id)
        .limit(DUE_LIMIT)
    )
    return list(islice(chain(merged, undated), DUE_LIMIT))


def disputes_past_due(merchant_id: int | None, *, livemode: bool, now: datetime) -> list[Dispute]:
    """Those that waited for an answer past their due date: the bank decides without one.
    Most recently due first."""
    stmt = _rows(merchant_id, livemode).where(
        Dispute.status.in_(NEEDS_RESPONSE_STATUSES), Dispute.evidence_due_by <= now
    )
    stmt = stmt.order_by(Dispute.evidence_due_by.desc(), Dispute.id.desc()).limit(DUE_LIMIT)
    return list(db.session.scalars(stmt))


def due_summary(merchant_id: int | None, *, livemode: bool, now: datetime) -> DueDisputes:
    """The banner's one query (ranges of the status-and-due index): only the disputes an
    answer can still reach count (one with no due date given among them)."""
    stmt = _in_view(
        select(func.count(), func.min(Dispute.evidence_due_by)), merchant_id, livemode
    ).where(
        Dispute.status.in_(NEEDS_RESPONSE_STATUSES),
        or_(Dispute.evidence_due_by > now, Dispute.evidence_due_by.is_(None)),
    )
    count, soonest = db.session.execute(stmt).one()
    return DueDisputes(count or 0, soonest)


def list_disputes(
    merchant_id: int | None, *, livemode: bool, before: int | None
) -> tuple[list[Dispute], int | None]:
    """One page of one mode, newest first: (rows, the cursor of the next older page or None)."""
    stmt = _rows(merchant_id, livemode)
    if before:
        stmt = stmt.where(Dispute.id < before)
    if merchant_id is not None:
        # The merchant's (mode, id) range: with LIMIT the optimizer may prefer walking the
        # primary key backwards, which reads every other merchant's newer disputes on the way.
        stmt = index_hint(stmt, Dispute, "FORCE INDEX (ix_disputes_merchant_mode_id)")
    rows = db.session.scalars(stmt.order_by(Dispute.id.desc()).limit(PAGE_SIZE + 1))
    page, last_id = older_page(list(rows), PAGE_SIZE)
    return page, last_id if isinstance(last_id, int) else None


def disputes_of_payment(payment_id: int) -> list[Dispute]:
    return list(
        db.session.scalars(
            select(Dispute).where(Dispute.payment_id == payment_id).order_by(Dispute.id)
        )
    )
