"""The payments' rollup: the overview's payment figures pre-aggregated per 15 minutes.

One row per (merchant, mode, 15-minute UTC bucket of `created_at`) and per combination of what
the overview groups by, with the count and amount of those payments. 15 minutes because every
time zone's midnight (Asia/Kolkata +05:30, Asia/Kathmandu +05:45, DST days of 23 or 25 hours)
falls on a quarter hour in UTC: a merchant's day is a whole number of buckets in any zone.

Kept by the worker (app/reporting/rollup.py), never by the create and webhook paths. Grouping
columns hold '' for "none" so that the unique key (which MariaDB does not enforce over NULLs)
makes a second copy of a row impossible.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import BigId, Timestamp


class PaymentRollup(db.Model):  # type: ignore[name-defined]  # Flask-SQLAlchemy's dynamic base
    __tablename__ = "payment_rollup"
    __table_args__ = (
        # The overview's read (merchant, mode, a range of buckets) and the worker's replace of
        # a bucket both follow this key.
        UniqueConstraint(
            "merchant_id",
            "livemode",
            "bucket_start",
            "currency",
            "status",
            "failure_reason",
            "method_type",
            "card_brand",
            "attempted",
            name="uq_payment_rollup_key",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(BigInteger)
    livemode: Mapped[bool] = mapped_column(Boolean)
    bucket_start: Mapped[datetime] = mapped_column(Timestamp)  # naive UTC, on a quarter hour
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10))
    failure_reason: Mapped[str] = mapped_column(String(24), default="")
    method_type: Mapped[str] = mapped_column(String(32), default="")
    card_brand: Mapped[str] = mapped_column(String(20), default="")
    # Paid, or tried at least once on the hosted page (a payment_attempts row).
    attempted: Mapped[bool] = mapped_column(Boolean)
    payments: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)


class RollupWatermark(db.Model):  # type: ignore[name-defined]
    """How far the rollup is known to be complete (one row, name 'payments')."""

    __tablename__ = "rollup_watermarks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Payments updated before this (naive UTC), less the commit lag, are in the rollup.
    updated_before: Mapped[datetime] = mapped_column(Timestamp)
    # Attempts with an id up to this one are in the rollup.
    attempts_through: Mapped[int] = mapped_column(BigInteger, default=0)
