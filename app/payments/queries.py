"""Reading payments for a merchant: one by its public id, or a page of a filtered list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select

from app.common import cursors
from app.errors import PayBridgeError
from app.extensions import db
from app.models import DisputeState, Payment, PaymentStatus
from app.models.base import naive_utc, states_matching
from app.models.payment import email_starts_with, within_one_merchant

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# No checkout session lives shorter than Stripe's minimum: what expired before `t` was made
# before `t` less this, which keeps the count below on the (status, created_at) index.
SHORTEST_CHECKOUT = timedelta(minutes=30)


def get_payment(merchant_id: int, public_id: str, *, livemode: bool | None = None) -> Payment:
    """One of the merchant's payments; someone else's is PAYMENT_NOT_FOUND like a missing one,
    and so is one of the other mode when `livemode` is given (as on Stripe: a test key never
    sees a live payment)."""
    stmt = (
        select(Payment)
        .where(Payment.public_id == public_id)
        .where(Payment.merchant_id == merchant_id)
    )
    if livemode is not None:
        stmt = stmt.where(Payment.livemode == livemode)
    payment = db.session.execute(stmt).scalar_one_or_none()
    if payment is None:
        raise PayBridgeError("PAYMENT_NOT_FOUND", param="id")
    return payment


def count_overdue(
    now: datetime, grace: timedelta, lifetime: timedelta
) -> dict[tuple[str, bool], int]:
    """Unfinished payments whose checkout expired more than `grace` ago, by status and mode
    (livemode: a stuck live payment is real money, a stuck test one is not): nothing
    finished them (reconciliation expires them after expiry). A payment never registered
    (CREATED, no session) counts from its creation plus `lifetime`, the checkout lifetime.
    PENDING ones are not counted: their shopper paid, and a delayed method takes days."""
    expired_before = now - grace
    overdue = or_(
        Payment.psp_expires_at < expired_before,
        and_(Payment.psp_expires_at.is_(None), Payment.created_at < expired_before - lifetime),
    )
    statuses = (PaymentStatus.CREATED, PaymentStatus.INITIATED)
    rows = db.session.execute(
        select(Payment.status, Payment.livemode, func.count())
        .where(Payment.status.in_(statuses))
        .where(Payment.created_at < expired_before - SHORTEST_CHECKOUT)
        .where(overdue)
        .group_by(Payment.status, Payment.livemode)
    ).all()
    counted = {(str(status), bool(livemode)): count for status, livemode, count in rows}
    return {
        (str(status), livemode): counted.get((str(status), livemode), 0)
        for status in statuses
        for livemode in (False, True)
    }


@dataclass(frozen=True)
class PaymentPage:
    payments: list[Payment]
    has_more: bool
    next_cursor: str | None


def list_payments(
    merchant_id: int,
    *,
    livemode: bool = False,
    status: str | None = None,
    created_gte: datetime | None = None,
    created_lte: datetime | None = None,
    merchant_reference: str | None = None,
    refund_state: str | None = None,
    dispute_state: str | None = None,
    failure_reason: str | None = None,
    method_type: str | None = None,
    customer_email: str | None = None,
    card_last4: str | None = None,
    card_brand: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    starting_after: str | None = None,
) -> PaymentPage:
    """The merchant's payments of one mode, newest first, filtered, one page after the
    cursor. Each filter is an equality that an index leading with (merchant, mode) and it
    serves, in (created_at, id) order, as the dashboard's list does; `customer_email` is the
    beginning of an email in any case, a range on (merchant, mode, customer_email)."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    stmt = select(Payment).where(Payment.merchant_id == merchant_id)
    stmt = stmt.where(Payment.livemode == livemode)
    if status:
        stmt = stmt.where(Payment.status == status)
    if created_gte:
        stmt = stmt.where(Payment.created_at >= naive_utc(created_gte))
    if created_lte:
        stmt = stmt.where(Payment.created_at <= naive_utc(created_lte))
    if merchant_reference:
        stmt = stmt.where(Payment.merchant_reference == merchant_reference)
    if refund_state:
        stmt = stmt.where(Payment.refund_state == refund_state)
    if dispute_state:
        # "any": every state, read through the (merchant, mode, dispute_state) index and sorted
        # (disputed payments are few).
        stmt = stmt.where(Payment.dispute_state.in_(states_matching(DisputeState, dispute_state)))
    if failure_reason:
        stmt = stmt.where(Payment.failure_reason == failure_reason)
    if method_type:
        stmt = stmt.where(Payment.method_type == method_type)
    if customer_email:
        # A prefix: a range on (merchant, mode, customer_email), as the dashboard's search.
        stmt = stmt.where(email_starts_with(customer_email))
    if card_last4:
        stmt = stmt.where(Payment.card_last4 == card_last4)
    if card_brand:
        stmt = stmt.where(Payment.card_brand == card_brand)
    # A cursor is only good in the mode that gave it out.
    scope = f"api.payments:{merchant_id}:{'live' if livemode else 'test'}"
    return PaymentPage(
        *cursors.newest_first_page(
            db.session,
            within_one_merchant(stmt),
            Payment.created_at,
            Payment.id,
            scope=scope,
            starting_after=starting_after,
            limit=limit,
        )  # fmt: skip
    )
