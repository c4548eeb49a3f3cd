"""Subscriptions (RECC), their four statuses and the table of moves between them, and the PSP
invoices that became their payments (`app/subscriptions/` is the only code that moves one)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from app.extensions import db
from app.models.base import BigId, ExactString, Timestamp, Transitions, public_id, utcnow
from app.models.merchant import Merchant
from app.models.payment import Payment


class SubscriptionStatus(StrEnum):
    INCOMPLETE = "incomplete"  # first payment not confirmed yet (delayed methods)
    ACTIVE = "active"
    PAST_DUE = "past_due"  # the latest renewal failed; the PSP retries
    CANCELLED = "cancelled"  # final


# A started subscription never goes back to incomplete; a cancelled one never comes back.
SUBSCRIPTION_TRANSITIONS = Transitions(
    {
        SubscriptionStatus.INCOMPLETE: frozenset(
            {SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE, SubscriptionStatus.CANCELLED}
        ),
        SubscriptionStatus.ACTIVE: frozenset(
            {SubscriptionStatus.PAST_DUE, SubscriptionStatus.CANCELLED}
        ),
        SubscriptionStatus.PAST_DUE: frozenset(
            {SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELLED}
        ),
        SubscriptionStatus.CANCELLED: frozenset(),
    }
)


SUBSCRIPTION_ID_PREFIX = "subs_"


def new_subscription_id() -> str:
    return public_id(SUBSCRIPTION_ID_PREFIX)


class Subscription(db.Model):
    """A merchant's recurring payment: its first payment (the checkout) and the PSP's
    subscription that bills the following periods."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("interval_count > 0", name="interval_count_positive"),
        Index(
            "ix_subscriptions_merchant_mode_created", "merchant_id", "livemode", "created_at", "id"
        ),
        Index("ix_subscriptions_status_updated", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(
        ExactString(32), unique=True, default=new_subscription_id
    )
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    first_payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), unique=True)
    psp: Mapped[str] = mapped_column(String(20), default="stripe")
    livemode: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    psp_subscription_id: Mapped[str] = mapped_column(ExactString(255), unique=True)
    status: Mapped[str] = mapped_column(String(12), default=SubscriptionStatus.INCOMPLETE.value)
    interval: Mapped[str] = mapped_column(String(5))
    interval_count: Mapped[int] = mapped_column(Integer, default=1)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    current_period_start: Mapped[datetime | None] = mapped_column(Timestamp)
    # The next billing date (or, with cancel_at_period_end, the day it ends).
    current_period_end: Mapped[datetime | None] = mapped_column(Timestamp)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    cancelled_at: Mapped[datetime | None] = mapped_column(Timestamp)
    ended_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # Creation time of the newest PSP subscription event applied: older ones are stale.
    psp_synced_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)

    merchant: Mapped[Merchant] = relationship()
    first_payment: Mapped[Payment] = relationship()
    charges: Mapped[list[SubscriptionCharge]] = relationship(
        back_populates="subscription", order_by="SubscriptionCharge.id"
    )

    @property
    def status_enum(self) -> SubscriptionStatus:
        return SubscriptionStatus(self.status)

    def __repr__(self) -> str:
        return f"<Subscription {self.public_id} {self.status}>"


class SubscriptionCharge(db.Model):
    """One charge attempt of a PSP invoice, recorded once: the payment it became.

    The unique (psp_invoice_id, attempt) key is what makes a duplicate or late invoice event,
    and reconciliation finding the same invoice, record nothing twice. `attempt` is `paid`
    for the charge that paid the invoice, `failed-<n>` for its n-th failed attempt.
    """

    __tablename__ = "subscription_charges"
    __table_args__ = (UniqueConstraint("psp_invoice_id", "attempt"),)

    ATTEMPT_PAID = "paid"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    psp_invoice_id: Mapped[str] = mapped_column(ExactString(255))
    attempt: Mapped[str] = mapped_column(ExactString(20))
    billing_reason: Mapped[str | None] = mapped_column(String(40))
    period_start: Mapped[datetime | None] = mapped_column(Timestamp)
    period_end: Mapped[datetime | None] = mapped_column(Timestamp)
    psp_event_id: Mapped[str | None] = mapped_column(ExactString(255))
    source: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    subscription: Mapped[Subscription] = relationship(back_populates="charges")
    payment: Mapped[Payment] = relationship()

    @staticmethod
    def failed_attempt(number: int) -> str:
        return f"failed-{number}"


def committed_since_snapshot(session: Session, payment: Payment) -> Subscription | None:
    """The subscription of a first payment that the caller holds locked, found by a locking
    read of the payment's PSP subscription id: unlike a plain read, it sees a subscription that
    another transaction committed after this one's snapshot (its customer.subscription.* event
    raced the checkout's completion). As the row exists, the read locks that one row and no gap.
    Never autoflushes."""
    if not payment.psp_subscription_id:
        return None
    with session.no_autoflush:
        committed = session.execute(
            select(Subscription)
            .where(Subscription.psp_subscription_id == payment.psp_subscription_id)
            .with_for_update(read=True)
        ).scalar_one_or_none()
    if committed is None or committed.first_payment_id != payment.id:
        return None
    return committed


def payments_of(session: Session, subscription: Subscription) -> list[Payment]:
    """The first payment and every renewal, oldest first."""
    first_id = subscription.first_payment_id
    return list(
        session.execute(
            select(Payment)
            .where((Payment.id == first_id) | (Payment.parent_payment_id == first_id))
            .order_by(Payment.created_at, Payment.id)
        ).scalars()
    )
