"""The payments' rollup: the overview's payment figures pre-aggregated per 15 minutes.

One row per (merchant, mode, 15-minute UTC bucket of `created_at`) and per combination of what
the overview groups by, with the count and amount of those payments and their attempts. 15
minutes because every time zone's midnight (Asia/Kolkata +05:30, Asia/Kathmandu +05:45, DST days
of 23 or 25 hours) falls on a quarter hour in UTC: a merchant's day is a whole number of buckets
in any zone.

Kept by the worker (app/reporting/rollup.py), never by the create and webhook paths. Grouping
columns hold '' for "none": they are part of the primary key (which allows no NULL), so a
second copy of a row is impossible.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import Timestamp


class PaymentRollup(db.Model):  # type: ignore[name-defined]  # Flask-SQLAlchemy's dynamic base
    __tablename__ = "payment_rollup"
    # The primary key is the rollup's key, so InnoDB keeps the rows in its order: the overview's
    # read of (merchant, mode, a range of buckets) and the worker's replace of a bucket are one
    # contiguous, covering range of the table itself.

    merchant_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    livemode: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    # Naive UTC, on a quarter hour.
    bucket_start: Mapped[datetime] = mapped_column(Timestamp, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    status: Mapped[str] = mapped_column(String(10), primary_key=True)
    failure_reason: Mapped[str] = mapped_column(String(24), primary_key=True, default="")
    method_type: Mapped[str] = mapped_column(String(32), primary_key=True, default="")
    card_brand: Mapped[str] = mapped_column(String(20), primary_key=True, default="")
    payments: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    # The hosted page's tries to pay these payments, and those the PSP accepted (the
    # overview's authorization rate) (0031).
    attempts: Mapped[int] = mapped_column(Integer)
    attempts_succeeded: Mapped[int] = mapped_column(Integer)


class RollupWatermark(db.Model):  # type: ignore[name-defined]
    """How far a worker's incremental pass is known to be complete, by name: the rollup's
    ('payments'), the payment-method lookup's ('payment_methods', `updated_before` only)."""

    __tablename__ = "rollup_watermarks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Payments updated before this (naive UTC), less the commit lag, are in the rollup.
    updated_before: Mapped[datetime] = mapped_column(Timestamp)
    # Attempts with an id up to this one are in the rollup.
    attempts_through: Mapped[int] = mapped_column(BigInteger, default=0)
