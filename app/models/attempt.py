"""Attempts: every try to pay a payment on the hosted page, declined or succeeded, as the PSP
reports it (a declined card's `payment_intent.payment_failed`, the succeeded charge).

One row per attempt however often or in whatever order the PSP tells it: an attempt is known
by its PSP charge id, or (a decline with no charge, e.g. an invalid card number) by the event
that reported it. Rows are written only under their payment's row lock.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import BigId, ExactString, Timestamp, utcnow

OUTCOME_FAILED = "failed"
OUTCOME_SUCCEEDED = "succeeded"


class PaymentAttempt(db.Model):
    __tablename__ = "payment_attempts"
    __table_args__ = (
        UniqueConstraint("psp_charge_id"),
        UniqueConstraint("psp_event_id"),
        # A payment's attempts in the order they happened.
        Index("ix_payment_attempts_payment", "payment_id", "attempted_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"))
    # When the PSP says the attempt happened (the charge's or the event's time).
    attempted_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    outcome: Mapped[str] = mapped_column(String(10))
    method_type: Mapped[str | None] = mapped_column(String(32))
    card_brand: Mapped[str | None] = mapped_column(String(20))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    # Stripe's words: decline_code (issuer's reason), code (e.g. card_declined) and message.
    decline_code: Mapped[str | None] = mapped_column(String(100))
    failure_code: Mapped[str | None] = mapped_column(String(100))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    psp_charge_id: Mapped[str | None] = mapped_column(ExactString(255))
    psp_event_id: Mapped[str | None] = mapped_column(ExactString(255))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    @property
    def succeeded(self) -> bool:
        return self.outcome == OUTCOME_SUCCEEDED

    def __repr__(self) -> str:
        return f"<PaymentAttempt {self.payment_id} {self.outcome} {self.decline_code}>"
