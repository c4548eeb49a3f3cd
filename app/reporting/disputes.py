"""The dashboard's dispute lists: what needs a response (due soonest first, also the banner's
count) and every dispute, newest first; one mode at a time, inside the tenancy scope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from app.common.cursors import older_page
from app.common.tenancy import scoped
from app.extensions import db
from app.models import Dispute
from app.models.dispute import NEEDS_RESPONSE_STATUSES
from app.reporting.modes import in_mode

PAGE_SIZE = 50
# The page lists this many of those needing a response; the banner counts them all.
DUE_LIMIT = 100


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


def disputes_due(merchant_id: int | None, *, livemode: bool) -> list[Dispute]:
    """Those waiting for the merchant's answer, due soonest first."""
    stmt = _rows(merchant_id, livemode).where(Dispute.status.in_(NEEDS_RESPONSE_STATUSES))
    return list(
        db.session.scalars(stmt.order_by(Dispute.evidence_due_by, Dispute.id).limit(DUE_LIMIT))
    )


def due_summary(merchant_id: int | None, *, livemode: bool) -> DueDisputes:
    """The banner's one query (on the status-and-due index)."""
    stmt = _in_view(
        select(func.count(), func.min(Dispute.evidence_due_by)), merchant_id, livemode
    ).where(Dispute.status.in_(NEEDS_RESPONSE_STATUSES))
    count, soonest = db.session.execute(stmt).one()
    return DueDisputes(count or 0, soonest)


def list_disputes(
    merchant_id: int | None, *, livemode: bool, before: int | None
) -> tuple[list[Dispute], int | None]:
    """One page of one mode, newest first: (rows, the cursor of the next older page or None)."""
    stmt = _rows(merchant_id, livemode)
    if before:
        stmt = stmt.where(Dispute.id < before)
    rows = db.session.scalars(stmt.order_by(Dispute.id.desc()).limit(PAGE_SIZE + 1))
    page, last_id = older_page(list(rows), PAGE_SIZE)
    return page, last_id if isinstance(last_id, int) else None


def disputes_of_payment(payment_id: int) -> list[Dispute]:
    return list(
        db.session.scalars(
            select(Dispute).where(Dispute.payment_id == payment_id).order_by(Dispute.id)
        )
    )
