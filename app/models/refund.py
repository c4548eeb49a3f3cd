"""Refunds: their own records against a SUCCESS payment, their three statuses and the table of
moves between them (`app/refunds/service.py` is the only code that moves a refund)."""

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
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import (
    BigId,
    ExactString,
    Timestamp,
    Transitions,
    merchant_indexes_only,
    public_id,
    utcnow,
)
from app.models.payment import Payment


class RefundStatus(StrEnum):
    PENDING = "pending"  # its amount is reserved; the PSP has not decided (or not been reached)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # final: its amount is free again

    @property
    def is_final(self) -> bool:
        return self == RefundStatus.FAILED


# A PSP can fail a refund it had confirmed (the money comes back): succeeded -> failed.
REFUND_TRANSITIONS = Transitions(
    {
        RefundStatus.PENDING: frozenset({RefundStatus.SUCCEEDED, RefundStatus.FAILED}),
        RefundStatus.SUCCEEDED: frozenset({RefundStatus.FAILED}),
        RefundStatus.FAILED: frozenset(),
    }
)
# The statuses whose amount counts against what remains refundable on the payment.
RESERVING_STATUSES = frozenset({RefundStatus.PENDING, RefundStatus.SUCCEEDED})


REFUND_ID_PREFIX = "re_"


def new_refund_id() -> str:
    return public_id(REFUND_ID_PREFIX)


class Refund(db.Model):
    """One refund of (part of) a payment.

    Created `pending` (its amount reserved against the payment) before the PSP is called;
    `succeeded` or `failed` once the PSP says so. A failed refund gives its amount back.
    """

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount > 0", name="refund_amount_positive"),
        Index("ix_refunds_payment", "payment_id", "id"),
        Index("ix_refunds_status_updated", "status", "updated_at"),
        # The refunds lists of one mode, newest first: a merchant's, by status or not, and an
        # operator's across merchants (0017).
        Index("ix_refunds_merchant_mode_created", "merchant_id", "livemode", "created_at", "id"),
        Index(
            "ix_refunds_merchant_status_created",
            "merchant_id",
            "livemode",
            "status",
            "created_at",
            "id",
        ),
        Index("ix_refunds_livemode_created", "livemode", "created_at", "id"),
        # Amount ranges, sorted by (created_at, id) from the index alone (0033).
        Index(
            "ix_refunds_merchant_amount",
            "merchant_id",
            "livemode",
            "amount",
            "currency",
            "created_at",
            "id",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(ExactString(32), unique=True, default=new_refund_id)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    # Its payment's mode, copied when it is made (a payment never changes mode): the refunds
    # lists filter it in their own indexes, which a join to the payment cannot do.
    livemode: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10), default=RefundStatus.PENDING.value)
    reason: Mapped[str | None] = mapped_column(String(30))
    # api | dashboard | psp (made at the PSP directly, e.g. its dashboard): who asked for it.
    source: Mapped[str] = mapped_column(String(10), default="api")
    psp: Mapped[str] = mapped_column(String(20), default="stripe")
    psp_refund_id: Mapped[str | None] = mapped_column(ExactString(255), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(String(100))
    # The Idempotency-Key record of the request that created it (None without a key).
    idempotency_record_id: Mapped[int | None] = mapped_column(
        ForeignKey("idempotency_keys.id", ondelete="SET NULL"), unique=True
    )
    # PSP submission attempts, and the last error that left it unsubmitted.
    psp_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_psp_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(Timestamp)

    payment: Mapped[Payment] = relationship()

    @property
    def psp_idempotency_key(self) -> str:
        """The key for creating this refund at the PSP: every retry reuses it."""
        return f"paybridge-refund-{self.public_id}"

    @property
    def status_enum(self) -> RefundStatus:
        return RefundStatus(self.status)

    def __repr__(self) -> str:
        return f"<Refund {self.public_id} {self.amount} {self.status}>"


def within_one_merchant(stmt):
    """`stmt`, whose WHERE holds one merchant's id, reading refunds only through indexes that
    lead with the merchant, or by their payment (one payment's refunds)."""
    return merchant_indexes_only(stmt, Refund, keep=("ix_refunds_payment",))
