"""The transactions table: filters, search, keyset pagination and the streamed CSV export.

Every query here starts from the caller's tenancy scope (one merchant, or all for an operator)
and one of Stripe's modes (test or live data, never both), and is shaped so MySQL answers it
from an index (migrations 0003_dashboard_indexes, 0013_mode_scoped_keys, 0015_mode_indexes):
equality on merchant_id, livemode and then status / currency / payment_type / refund_state
(0017_refund_indexes) / dispute_state (0030_payment_dispute_state) / method_type /
failure_reason / card_brand / card_last4 (0018_attempts_methods), then a range on created_at,
ordered by (created_at, id) — the primary key rides along at the end of every InnoDB secondary
index.
An amount range is read in amount order from (merchant_id, livemode, amount, currency, created_at,
id) (0033): the page's keys are sorted from that index alone, then its rows read by id.
Search is exact-or-prefix only (`LIKE 'abc%'`), never a leading wildcard; emails are kept in lower
case and searched by their start through (merchant_id, livemode, customer_email) (0019_list_search).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from itertools import product
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import Select, and_, false, or_, select, text
from sqlalchemy.exc import DBAPIError

from app.common import cursors, payment_methods
from app.common.money import THREE_DECIMAL, ZERO_DECIMAL, format_minor, to_minor
from app.common.timezones import day_range, to_local, zone_of
from app.extensions import db
from app.models import DisputeState, Payment, RefundState
from app.models.base import ANY_STATE, states_matching
from app.models.payment import could_start_email, email_starts_with, within_one_merchant
from app.reporting.modes import in_mode
from app.serializers.payment import PAYMENT_METHOD_FIELDS

PAGE_SIZE = 50
EXPORT_BATCH = 1000


class BadCursor(ValueError):
    """A pagination cursor that was not produced by this page."""


STALE_LINK = "This page link is not valid any more; showing the first page."


@dataclass
class TransactionFilter:
    """What the person asked for; None means "any"."""

    merchant_id: int | None = None  # the tenancy scope: always set for a merchant user
    livemode: bool = False  # the mode the dashboard shows: test and live data never mix
    status: str | None = None
    date_from: date | None = None
    date_to: date | None = None  # inclusive: the whole day
    zone: ZoneInfo | None = None  # whose days date_from and date_to are (None: UTC)
    amount_min: Decimal | None = None  # major units, in the payment's own currency
    amount_max: Decimal | None = None
    currency: str | None = None
    payment_type: str | None = None
    refund_state: str | None = None  # RefundState (in part, in full) or ANY_REFUND (either)
    dispute_state: str | None = None  # DisputeState (open, lost, won) or ANY_DISPUTE (any)
    method_type: str | None = None  # card, sepa_debit, … (the PSP's payment method type)
    failure_reason: str | None = None  # app/payments/failure_reasons.py's codes
    q: str | None = None
    extra: dict = field(default_factory=dict)


def amount_clause(amount_min: Decimal | None, amount_max: Decimal | None, currency, columns):
    """Major-unit bounds → minor-unit ranges on `columns` (amount, currency); per exponent group
    when no currency is chosen."""
    if amount_min is None and amount_max is None:
        return None
    amount_col, currency_col = columns

    def bounded(cur: str):
        parts = []
        if amount_min is not None:
            parts.append(amount_col >= to_minor(amount_min, cur, round_up=True))
        if amount_max is not None:
            parts.append(amount_col <= to_minor(amount_max, cur))
        return and_(*parts)

    if currency:
        return bounded(currency)
    special = sorted(ZERO_DECIMAL | THREE_DECIMAL)
    return or_(
        and_(currency_col.in_(sorted(ZERO_DECIMAL)), bounded("JPY")),
        and_(currency_col.in_(sorted(THREE_DECIMAL)), bounded("KWD")),
        and_(currency_col.not_in(special), bounded("EUR")),
    )


# The refund filter's value for "refunded in part or in full", the dispute filter's for
# "disputed, however it stands".
ANY_REFUND = ANY_DISPUTE = ANY_STATE


def refund_clauses(refund_state: str | None) -> list:
    """One clause per stored refund state the filter asks for (none: any payment)."""
    return _state_clauses(Payment.refund_state, refund_state, RefundState)


def dispute_clauses(dispute_state: str | None) -> list:
    """One clause per stored dispute state the filter asks for (none: any payment)."""
    return _state_clauses(Payment.dispute_state, dispute_state, DisputeState)


def _state_clauses(column, wanted: str | None, states) -> list:
    """Equalities an index serves: "any" is one branch per state, not `IS NOT NULL` (a range
    the index cannot walk in (created_at, id) order)."""
    if not wanted:
        return []
    return [column == value for value in states_matching(states, wanted)]


def search_clauses(q: str | None) -> list:
    """Exact or prefix matches on the identifiers a person pastes, one clause per identifier
    it could be the start of; each is served by its own index. A card brand or payment method
    type (its code, its name or the name's first word: "amex", "SEPA", "American Express") is
    one more branch (its own index: merchant, mode, brand or type, created_at): a reference or
    an email starting with "visa" or "card" is still found."""
    q = (q or "").strip()
    if not q:
        return []
    lowered = q.lower()
    types, brands = payment_methods.named(q)
    clauses = [Payment.card_brand == brand for brand in brands]
    clauses += [Payment.method_type == method_type for method_type in types]
    clauses.append(Payment.merchant_reference.startswith(q, autoescape=True))
    if lowered.startswith("pay_"):
        clauses.append(Payment.public_id.startswith(q, autoescape=True))
    if lowered.startswith("cs_"):
        clauses.append(Payment.psp_session_id.startswith(q, autoescape=True))
    if could_start_email(q):
        clauses.append(email_starts_with(q))
    # A card's or an IBAN's last 4 (0018's indexes).
    if len(q) == 4 and q.isalnum():
        clauses.append(Payment.card_last4 == q)
    return clauses


def _base(f: TransactionFilter) -> Select:
    """SELECT payments matching every filter but the search and the refund state."""
    stmt = in_mode(select(Payment), Payment, f.livemode)
    if f.merchant_id is not None:
        stmt = stmt.where(Payment.merchant_id == f.merchant_id)
    if f.status:
        stmt = stmt.where(Payment.status == f.status)
    if f.currency:
        stmt = stmt.where(Payment.currency == f.currency.upper())
    if f.payment_type:
        stmt = stmt.where(Payment.payment_type == f.payment_type)
    if f.method_type:
        stmt = stmt.where(Payment.method_type == f.method_type)
    if f.failure_reason:
        stmt = stmt.where(Payment.failure_reason == f.failure_reason)
    start, end = day_range(f.date_from, f.date_to, f.zone)
    if start:
        stmt = stmt.where(Payment.created_at >= start)
    if end:
        stmt = stmt.where(Payment.created_at < end)
    if f.date_from and f.date_to and f.date_to < f.date_from:
        stmt = stmt.where(false())
    amount = amount_clause(
        f.amount_min, f.amount_max, f.currency, (Payment.amount, Payment.currency)
    )
    if amount is not None:
        stmt = stmt.where(amount)
    return stmt


def filtered(f: TransactionFilter) -> Select:
    """SELECT payments matching the filter (no order, no limit): one statement, as the export
    reads it."""
    stmt = _base(f)
    for clauses in (
        refund_clauses(f.refund_state),
        dispute_clauses(f.dispute_state),
        search_clauses(f.q),
    ):
        if clauses:
            stmt = stmt.where(or_(*clauses))
    return stmt


def branches(f: TransactionFilter) -> list[Select]:
    """The same set as `filtered`, as statements whose union it is, each an equality or one
    prefix on one index: "refunded in part or in full" or "a reference or an email starting
    with" is an OR an index cannot walk in (created_at, id) order, each branch can (and LIMIT
    stops it early); `keyset_page` merges their pages. A merchant's branches read only the
    indexes leading with the merchant."""
    base = _base(f)
    if f.merchant_id is not None:
        base = within_one_merchant(base)
    ors = [
        refund_clauses(f.refund_state) or [None],
        dispute_clauses(f.dispute_state) or [None],
        search_clauses(f.q) or [None],
    ]
    return [base.where(*[c for c in one if c is not None]) for one in product(*ors)]


# One list for every dashboard user: the filters and the tenancy scope are applied again on
# every page, so a cursor carries only a position.
CURSOR_SCOPE = "dashboard.payments"


@dataclass
class Page:
    rows: list
    older: str | None  # cursor for the next (older) page
    newer: str | None  # cursor for the previous (newer) page
    # Set when a query stopped after reading this many index entries: older matches may exist.
    stopped_after: int | None = None


# MariaDB's warning that a query stopped at its LIMIT ROWS EXAMINED, and its error when the
# bound was reached while sorting (the matches of a range read out of the list's order).
_ROWS_EXAMINED_EXCEEDED = 1931
_SORT_ABORTED = 1028


def _sort_aborted(exc: DBAPIError) -> bool:
    return bool(exc.orig and exc.orig.args and exc.orig.args[0] == _SORT_ABORTED)


def _read_bound(examine_at_most: int | None) -> int | None:
    """The bound this database can keep: MariaDB's LIMIT … ROWS EXAMINED; MySQL and SQLite
    have none, and read on."""
    return examine_at_most if getattr(db.engine.dialect, "is_mariadb", False) else None


def _stopped_short() -> bool:
    """Whether the last statement (on MariaDB) stopped at its ROWS EXAMINED bound."""
    warnings = db.session.execute(text("SHOW WARNINGS")).all()
    return any(int(w[1]) == _ROWS_EXAMINED_EXCEEDED for w in warnings)


def keyset_page(
    stmt: Select | list[Select],
    model,
    scope: str,
    *,
    after: str | None = None,
    before: str | None = None,
    examine_at_most: int | None = None,
    narrow_first: bool = False,
) -> Page:
    """One page of `model`'s rows, newest first, by keyset on (created_at, id): no OFFSET, so
    page 1000 is as cheap as page 1. `after` walks to older rows, `before` back to newer ones;
    a cursor of another list (`scope`) is BadCursor. A list of statements is their union: each
    is read as far as one page, and the pages merged (a row in several counts once). With
    `examine_at_most`, each statement stops after reading that many rows on MariaDB, and the
    page says so (`stopped_after`) when one did before filling it, or stopped while sorting.
    `narrow_first` picks the page's ids first, then joins their rows: for a filter whose index
    is read out of the list's order (an amount range), the sort is then over index entries, not
    whole rows, and reads them all (no bound: it would stop every wide range)."""
    statements = stmt if isinstance(stmt, list) else [stmt]
    bound = None if narrow_first else _read_bound(examine_at_most)
    stopped = False

    def cursor(row) -> str:
        return cursors.encode(row.created_at, row.id, scope)

    def position(token: str) -> tuple[datetime, int]:
        try:
            return cursors.decode(token, scope)
        except cursors.InvalidCursor as exc:
            raise BadCursor(STALE_LINK) from exc

    def first_rows(where, *, newest_first: bool) -> list:
        """The first PAGE_SIZE + 1 rows of the union in the given order."""
        key = (
            (model.created_at.desc(), model.id.desc())
            if newest_first
            else (
                model.created_at.asc(),
                model.id.asc(),
            )
        )
        nonlocal stopped
        found = {}
        for one in statements:
            if where is not None:
                one = one.where(where)
            if narrow_first:
                ids = one.with_only_columns(model.id).order_by(*key).limit(PAGE_SIZE + 1)
                picked = ids.subquery()
                one = one.join(picked, model.id == picked.c.id)
            one = one.order_by(*key).limit(PAGE_SIZE + 1)
            if bound is not None:
                one = one.suffix_with(f"ROWS EXAMINED {int(bound)}")
            try:
                rows = db.session.scalars(one).all()
            except DBAPIError as exc:
                if bound is None or not _sort_aborted(exc):
                    raise
                rows, stopped = [], True  # more matches than the bound, to be sorted
            else:
                if bound is not None and len(rows) <= PAGE_SIZE and _stopped_short():
                    stopped = True
            for row in rows:
                found[row.id] = row
        ordered = sorted(found.values(), key=lambda r: (r.created_at, r.id), reverse=newest_first)
        return ordered[: PAGE_SIZE + 1]

    if before:
        newer = cursors.newer_than(model.created_at, model.id, position(before))
        rows = first_rows(newer, newest_first=False)
        has_newer = len(rows) > PAGE_SIZE
        rows = list(reversed(rows[:PAGE_SIZE]))
        return Page(
            rows=rows,
            older=cursor(rows[-1]) if rows else None,
            newer=cursor(rows[0]) if rows and has_newer else None,
            stopped_after=bound if stopped else None,
        )
    older = cursors.older_than(model.created_at, model.id, position(after)) if after else None
    rows = first_rows(older, newest_first=True)
    has_older = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return Page(
        rows=rows,
        older=cursor(rows[-1]) if rows and has_older else None,
        newer=cursor(rows[0]) if rows and after else None,
        stopped_after=bound if stopped else None,
    )


def page(f: TransactionFilter, *, after: str | None = None, before: str | None = None) -> Page:
    """One page of the filtered payments, newest first."""
    return keyset_page(
        branches(f),
        Payment,
        CURSOR_SCOPE,
        after=after,
        before=before,
        examine_at_most=current_app.config["LIST_ROWS_EXAMINED_MAX"],
        narrow_first=has_amount_range(f),
    )


def has_amount_range(f) -> bool:
    """Whether a list's filter bounds the amount: its matches come in amount order, and the
    page is sorted from the amount index's entries (`keyset_page`'s `narrow_first`, 0033)."""
    return f.amount_min is not None or f.amount_max is not None


CSV_COLUMNS = [
    "payment_id",
    "created_at",
    "merchant_id",
    "merchant_reference",
    "status",
    "amount",
    "amount_minor",
    "currency",
    "payment_type",
    "customer_email",
    "description",
    "psp_session_id",
    "refunded_amount_minor",
    "finalized_at",
    "failure_code",
    "livemode",
    "refunded_amount",
    "refund_state",
    "failure_reason",
    "method_type",
    "card_brand",
    "card_last4",
    # From the stored payment method (Stripe's words), empty where it has none.
    "card_exp_month",
    "card_exp_year",
    "card_funding",
    "method_country",
    "wallet",
    "three_d_secure",
    "sepa_mandate",
    "dispute_state",
    # Appended after the existing columns so readers by position keep working.
    "sepa_mandate_reference",
]

# The payment_method JSON's keys behind the detail columns, in CSV_COLUMNS' order: the API's
# payment_method object's fields after type, brand and last 4 (which have columns of their own)
# up to `mandate`, then those added later (LATER_METHOD_KEYS), after dispute_state.
_FIRST_LATER = PAYMENT_METHOD_FIELDS.index("mandate") + 1
METHOD_DETAIL_KEYS = PAYMENT_METHOD_FIELDS[3:_FIRST_LATER]
LATER_METHOD_KEYS = PAYMENT_METHOD_FIELDS[_FIRST_LATER:]

# A cell starting with one of these is run as a formula by spreadsheet programs.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value, zone: ZoneInfo | None = None) -> str:
    """One cell: text that no spreadsheet runs as a formula; a stored time in `zone` (the
    list's, None: UTC) with its offset, to the second: 2026-12-07 13:00:00+01:00."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        # Truncated, not rounded: a time never moves into the next second (or day).
        return to_local(value, zone or zone_of(None)).isoformat(sep=" ", timespec="seconds")
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


EXPORT_COLUMNS = (
    Payment.public_id,
    Payment.created_at,
    Payment.merchant_id,
    Payment.merchant_reference,
    Payment.status,
    Payment.amount,
    Payment.currency,
    Payment.payment_type,
    Payment.customer_email,
    Payment.description,
    Payment.psp_session_id,
    Payment.refunded_amount,
    Payment.finalized_at,
    Payment.failure_code,
    Payment.livemode,
    Payment.refund_state,
    Payment.failure_reason,
    Payment.method_type,
    Payment.card_brand,
    Payment.card_last4,
    Payment.payment_method,
    Payment.dispute_state,
)


def csv_row(row, zone: ZoneInfo | None = None) -> list[str]:
    """A payment's cells; its times in `zone` (None: UTC), each with its offset."""
    return [
        row.public_id,
        csv_cell(row.created_at, zone),
        str(row.merchant_id),
        csv_cell(row.merchant_reference),
        row.status,
        format_minor(row.amount, row.currency),
        str(row.amount),
        row.currency,
        row.payment_type,
        csv_cell(row.customer_email),
        csv_cell(row.description),
        csv_cell(row.psp_session_id),
        str(row.refunded_amount or 0),
        csv_cell(row.finalized_at, zone),
        csv_cell(row.failure_code),
        "true" if row.livemode else "false",  # as the API and notifications write it
        format_minor(row.refunded_amount or 0, row.currency),
        row.refund_state or "",
        row.failure_reason or "",
        csv_cell(row.method_type),
        csv_cell(row.card_brand),
        csv_cell(row.card_last4),
        *_method_details(row.payment_method, METHOD_DETAIL_KEYS),
        row.dispute_state or "",
        *_method_details(row.payment_method, LATER_METHOD_KEYS),
    ]


def _method_details(method, keys: tuple[str, ...]) -> list[str]:
    """The detail cells of a stored payment method (a dict; anything else reads as none)."""
    method = method if isinstance(method, dict) else {}
    return [csv_cell(method.get(key)) for key in keys]


def export_csv(f: TransactionFilter) -> Iterator[str]:
    """The whole filtered set of payments as CSV text chunks, newest first; times in the
    filter's zone (the list's: its days are that zone's too), with their offsets."""
    # Plain column rows, not ORM objects: nothing lands in the session's identity map.
    stmt = (
        filtered(f)
        .with_only_columns(*EXPORT_COLUMNS)
        .order_by(Payment.created_at.desc(), Payment.id.desc())
    )
    return stream_csv(CSV_COLUMNS, stmt, lambda row: csv_row(row, f.zone))


def stream_csv(header: list[str], stmt: Select, to_cells) -> Iterator[str]:
    """`stmt`'s rows as CSV text chunks, `to_cells` making each row's cells.

    Rows come through a server-side cursor in batches (yield_per → stream_results), and each
    batch is written out and dropped, so memory stays flat for 100k rows or a million.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    result = db.session.execute(stmt.execution_options(yield_per=EXPORT_BATCH))
    try:
        for partition in result.partitions():
            for row in partition:
                writer.writerow(to_cells(row))
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    finally:
        result.close()
    tail = buffer.getvalue()
    if tail:
        yield tail
