"""The dashboard's subscription lists: a page of them, and the one a payment belongs to."""

from __future__ import annotations

from sqlalchemy import select

from app.common.cursors import older_page
from app.common.tenancy import scoped
from app.extensions import db
from app.models import Subscription
from app.reporting.modes import in_mode

PAGE_SIZE = 50


def payment_subscription(payment) -> Subscription | None:
    """The subscription a RECC payment belongs to (as its first payment or a renewal)."""
    return db.session.execute(
        select(Subscription).where(
            Subscription.first_payment_id == (payment.parent_payment_id or payment.id)
        )
    ).scalar_one_or_none()


def subscription_in_scope(public_id: str, *, merchant_id: int | None) -> Subscription | None:
    """The subscription if it exists inside the scope; another merchant's is not found."""
    stmt = select(Subscription).where(Subscription.public_id == public_id)
    stmt = scoped(stmt, Subscription, merchant_id)
    return db.session.execute(stmt).scalar_one_or_none()


def list_subscriptions(
    merchant_id: int | None, *, livemode: bool, status: str | None, before: int | None
) -> tuple[list[Subscription], int | None]:
    """One page of one mode, newest first: (rows, the cursor of the next older page or None)."""
    stmt = in_mode(scoped(select(Subscription), Subscription, merchant_id), Subscription, livemode)
    if status:
        stmt = stmt.where(Subscription.status == status)
    if before:
        stmt = stmt.where(Subscription.id < before)
    rows = db.session.execute(stmt.order_by(Subscription.id.desc()).limit(PAGE_SIZE + 1))
    return older_page(list(rows.scalars()), PAGE_SIZE)
