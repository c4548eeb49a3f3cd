"""The refunds list: filters, keyset pages and the streamed CSV export, one mode at a time.

A refund carries its payment's mode, and the payment comes along with each row for its link
and reference. A merchant's list is read from ix_refunds_merchant_mode_created or, by status,
ix_refunds_merchant_status_created; an operator's across merchants from
ix_refunds_livemode_created (0017_refund_indexes), newest first by (created_at, id); an amount
range from ix_refunds_merchant_amount, sorted there (0033).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Select, false, select
from sqlalchemy.orm import contains_eager

from app.common.money import format_minor
from app.common.timezones import day_range
from app.models import Payment, Refund
from app.models.refund import within_one_merchant
from app.reporting.modes import in_mode
from app.reporting.transactions import (
    Page,
    amount_clause,
    csv_cell,
    has_amount_range,
    keyset_page,
    stream_csv,
)

CURSOR_SCOPE = "dashboard.refunds"


@dataclass
class RefundFilter:
    """What the person asked for; None means "any"."""

    merchant_id: int | None = None  # the tenancy scope: always set for a merchant user
    livemode: bool = False
    status: str | None = None
    date_from: date | None = None
    date_to: date | None = None  # inclusive: the whole day
    zone: ZoneInfo | None = None  # whose days date_from and date_to are (None: UTC)
    amount_min: Decimal | None = None  # major units, in the refund's own currency
    amount_max: Decimal | None = None


def filtered(f: RefundFilter) -> Select:
    """SELECT refunds matching the filter, joined to their payments (no order, no limit). An
    outer join, though every refund has its payment: a statement that reads no payment column
    (a page's ids, `keyset_page`'s `narrow_first`) then skips the payments table."""
    stmt = in_mode(select(Refund), Refund, f.livemode).outerjoin(
        Payment, Payment.id == Refund.payment_id
    )
    if f.merchant_id is not None:
        stmt = within_one_merchant(stmt.where(Refund.merchant_id == f.merchant_id))
    if f.status:
        stmt = stmt.where(Refund.status == f.status)
    start, end = day_range(f.date_from, f.date_to, f.zone)
    if start:
        stmt = stmt.where(Refund.created_at >= start)
    if end:
        stmt = stmt.where(Refund.created_at < end)
    if f.date_from and f.date_to and f.date_to < f.date_from:
        stmt = stmt.where(false())
    amount = amount_clause(f.amount_min, f.amount_max, None, (Refund.amount, Refund.currency))
    if amount is not None:
        stmt = stmt.where(amount)
    return stmt


def page(f: RefundFilter, *, after: str | None = None, before: str | None = None) -> Page:
    """One page of refunds, newest first (keyset: page 1000 costs what page 1 does)."""
    stmt = filtered(f).options(contains_eager(Refund.payment))
    return keyset_page(
        stmt, Refund, CURSOR_SCOPE, after=after, before=before, narrow_first=has_amount_range(f)
    )


CSV_COLUMNS = [
    "refund_id",
    "created_at",
    "merchant_id",
    "payment_id",
    "merchant_reference",
    "status",
    "amount",
    "amount_minor",
    "currency",
    "reason",
    "source",
    "psp_refund_id",
    "failure_reason",
    "completed_at",
    "livemode",
]

EXPORT_COLUMNS = (
    Refund.public_id,
    Refund.created_at,
    Refund.merchant_id,
    Payment.public_id.label("payment_public_id"),
    Payment.merchant_reference,
    Refund.status,
    Refund.amount,
    Refund.currency,
    Refund.reason,
    Refund.source,
    Refund.psp_refund_id,
    Refund.failure_reason,
    Refund.completed_at,
    Payment.livemode,
)


def csv_row(row, zone: ZoneInfo | None = None) -> list[str]:
    """A refund's cells; its times in `zone` (None: UTC), each with its offset."""
    return [
        row.public_id,
        csv_cell(row.created_at, zone),
        str(row.merchant_id),
        row.payment_public_id,
        csv_cell(row.merchant_reference),
        row.status,
        format_minor(row.amount, row.currency),
        str(row.amount),
        row.currency,
        csv_cell(row.reason),
        row.source,
        csv_cell(row.psp_refund_id),
        csv_cell(row.failure_reason),
        csv_cell(row.completed_at, zone),
        "true" if row.livemode else "false",
    ]


def export_csv(f: RefundFilter) -> Iterator[str]:
    """Every filtered refund as CSV text chunks, newest first, streamed in batches; times in
    the filter's zone, with their offsets."""
    stmt = (
        filtered(f)
        .with_only_columns(*EXPORT_COLUMNS)
        .order_by(Refund.created_at.desc(), Refund.id.desc())
    )
    return stream_csv(CSV_COLUMNS, stmt, lambda row: csv_row(row, f.zone))
