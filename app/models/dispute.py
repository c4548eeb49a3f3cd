"""Disputes: a cardholder's challenge of a paid payment, as the PSP reports it.

The PSP decides every status (a dispute moves by its events, or by what the PSP answers to the
merchant's evidence or acceptance); PayBridge keeps the latest it was told, with what it needs
to show what is due when.
"""

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
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import BigId, ExactString, Timestamp, public_id, utcnow
from app.models.payment import Payment

# Stripe's dispute statuses: those waiting for the merchant's answer, and those decided.
NEEDS_RESPONSE_STATUSES = ("needs_response", "warning_needs_response")
CLOSED_STATUSES = ("won", "lost", "warning_closed", "prevented")
# What a merchant reads for each of Stripe's words.
STATUS_LABELS = {
    "needs_response": "Needs response",
    "warning_needs_response": "Inquiry: needs response",
    "under_review": "Under review",
    "warning_under_review": "Inquiry under review",
    "won": "Won",
    "lost": "Lost",
    "warning_closed": "Inquiry closed",
    "prevented": "Prevented",
}

DISPUTE_ID_PREFIX = "dsp_"


class DisputeState(StrEnum):
    """Where a payment's disputes stand, stored on the payment (`Payment.dispute_state`) so the
    transactions list marks and filters disputed payments through an index, as it does refunds.
    """

    OPEN = "open"  # waiting for the merchant's answer or the bank's decision
    LOST = "lost"  # the bank decided for the cardholder: the money is gone
    WON = "won"  # decided for the merchant, or closed without a chargeback (inquiry, prevented)

    @property
    def label(self) -> str:
        """What a merchant reads on the payment's badge and in the list's filter."""
        return {"open": "Disputed", "lost": "Dispute lost", "won": "Dispute won"}[self.value]

    @classmethod
    def of(cls, statuses: list[str]) -> DisputeState | None:
        """The state of a payment with disputes of these statuses (none: not disputed). What
        still needs attention counts first, then what was lost."""
        if not statuses:
            return None
        if any(status not in CLOSED_STATUSES for status in statuses):
            return cls.OPEN
        return cls.LOST if "lost" in statuses else cls.WON


def new_dispute_id() -> str:
    return public_id(DISPUTE_ID_PREFIX)


class Dispute(db.Model):
    """One dispute of a payment, of the payment's mode."""

    __tablename__ = "disputes"
    __table_args__ = (
        CheckConstraint("amount > 0", name="dispute_amount_positive"),
        # The API's and the dashboard's list (newest first), one mode at a time.
        Index("ix_disputes_merchant_mode_created", "merchant_id", "livemode", "created_at", "id"),
        # What needs a response, due soonest first (the disputes page and the banner): read
        # one status at a time, each in (evidence_due_by, id) order (the primary key ends every
        # InnoDB index).
        Index(
            "ix_disputes_merchant_mode_status_due",
            "merchant_id",
            "livemode",
            "status",
            "evidence_due_by",
        ),
        Index("ix_disputes_payment", "payment_id", "id"),
        # The API's list by status, newest first (0020_dispute_indexes).
        Index(
            "ix_disputes_merchant_mode_status_created",
            "merchant_id",
            "livemode",
            "status",
            "created_at",
            "id",
        ),
        # The dashboard's every dispute, newest (highest id) first (0020_dispute_indexes).
        Index("ix_disputes_merchant_mode_id", "merchant_id", "livemode", "id"),
        # The overview's money moved by day: withdrawn, reinstated (0028_dispute_funds_indexes).
        Index(
            "ix_disputes_merchant_mode_withdrawn", "merchant_id", "livemode", "funds_withdrawn_at"
        ),
        Index(
            "ix_disputes_merchant_mode_reinstated", "merchant_id", "livemode", "funds_reinstated_at"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(ExactString(32), unique=True, default=new_dispute_id)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    livemode: Mapped[bool] = mapped_column(Boolean, default=False)
    psp: Mapped[str] = mapped_column(String(20), default="stripe")
    psp_dispute_id: Mapped[str] = mapped_column(ExactString(255), unique=True)
    psp_charge_id: Mapped[str | None] = mapped_column(ExactString(255))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(30))
    evidence_due_by: Mapped[datetime | None] = mapped_column(Timestamp)
    has_evidence: Mapped[bool] = mapped_column(Boolean, default=False)
    submission_count: Mapped[int] = mapped_column(Integer, default=0)
    # The text evidence PayBridge submitted (the PSP keeps the rest of its evidence fields).
    evidence_text: Mapped[str | None] = mapped_column(Text)
    funds_withdrawn_at: Mapped[datetime | None] = mapped_column(Timestamp)
    funds_reinstated_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # The PSP's time of the newest state applied: an older event arriving late changes nothing.
    psp_updated_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(Timestamp)

    payment: Mapped[Payment] = relationship()

    @property
    def needs_response(self) -> bool:
        return self.status in NEEDS_RESPONSE_STATUSES

    def answerable(self, now: datetime) -> bool:
        """Waiting for the merchant's answer and still in time for it. Past its due date the
        bank decides without one. With no due date given it is treated as answerable (the PSP
        refuses an answer it cannot take; hiding it could lose a dispute unanswered)."""
        due = self.evidence_due_by
        return self.needs_response and (due is None or now < due)

    def past_due(self, now: datetime) -> bool:
        return self.needs_response and not self.answerable(now)

    @property
    def is_closed(self) -> bool:
        return self.status in CLOSED_STATUSES

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    def __repr__(self) -> str:
        return f"<Dispute {self.public_id} {self.amount} {self.status}>"
