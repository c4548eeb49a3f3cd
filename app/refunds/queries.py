"""Reading refunds for a merchant's API key: one by its public id, or a page of a filtered list.

Every read keeps the key's mode (a refund carries its payment's): a test key never sees a live
refund, as on Stripe."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import contains_eager

from app.common import cursors
from app.errors import PayBridgeError
from app.extensions import db
from app.models import Payment, Refund
from app.models.base import naive_utc
from app.models.refund import within_one_merchant
from app.payments.queries import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE


@dataclass
class RefundPage:
    refunds: list[Refund]
    has_more: bool
    next_cursor: str | None


def _of_key(merchant_id: int, livemode: bool) -> Select:
    """The merchant's refunds of one mode, each with its payment loaded (the serializer names
    the payment: no query per row)."""
    stmt = (
        select(Refund)
        .join(Payment, Payment.id == Refund.payment_id)
        .options(contains_eager(Refund.payment))
        .where(Refund.merchant_id == merchant_id)
        .where(Refund.livemode == livemode)
    )
    return within_one_merchant(stmt)


def get_refund(merchant_id: int, public_id: str, *, livemode: bool) -> Refund:
    """One of the merchant's refunds of the key's mode; anyone else's, or one of the other
    mode, is REFUND_NOT_FOUND like a missing one."""
    stmt = _of_key(merchant_id, livemode).where(Refund.public_id == public_id)
    refund = db.session.execute(stmt).scalar_one_or_none()
    if refund is None:
        raise PayBridgeError("REFUND_NOT_FOUND", param="id")
    return refund


def list_refunds(
    merchant_id: int,
    *,
    livemode: bool = False,
    status: str | None = None,
    payment_id: str | None = None,
    created_gte: datetime | None = None,
    created_lte: datetime | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    starting_after: str | None = None,
) -> RefundPage:
    """The merchant's refunds of one mode, newest first, filtered, one page after the cursor.
    `payment_id` is a payment's public id: one the key cannot see simply has no refunds."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    stmt = _of_key(merchant_id, livemode)
    if status:
        stmt = stmt.where(Refund.status == status)
    if payment_id:
        stmt = stmt.where(Payment.public_id == payment_id)
    if created_gte:
        stmt = stmt.where(Refund.created_at >= naive_utc(created_gte))
    if created_lte:
        stmt = stmt.where(Refund.created_at <= naive_utc(created_lte))
    # A cursor is only good in the list (merchant and mode) that gave it out.
    scope = f"api.refunds:{merchant_id}:{'live' if livemode else 'test'}"
    return RefundPage(
        *cursors.newest_first_page(
            db.session,
            stmt,
            Refund.created_at,
            Refund.id,
            scope=scope,
            starting_after=starting_after,
            limit=limit,
        )  # fmt: skip
    )
