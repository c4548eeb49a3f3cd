"""Customers: the payments of one email per merchant and mode, and the list of those emails.

A customer is not a row of its own: it is an email a merchant's payments carry, in one of
Stripe's modes (a test shopper is not a live one). Emails are kept in lower case
(0019_list_search), so one address in any case is one customer. Every read leads with
(merchant_id, livemode, customer_email) and is served by ix_payments_merchant_email, which ends
in (created_at, id): a customer's payments come newest first from it, and the customers list
walks it in email order, covered, grouping as it goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import Dispute, Payment, PaymentStatus, Refund
from app.models.base import MYSQL_FAMILY, index_hint
from app.models.payment import email_starts_with, normalize_email, within_one_merchant
from app.reporting.transactions import Page, keyset_page

CURSOR_SCOPE = "dashboard.customer"
PAGE_SIZE = 50
# The customer page lists this many of the customer's refunds and disputes, newest first.
RELATED_LIMIT = 50


@dataclass(frozen=True)
class CurrencyTotals:
    """What a customer paid in one currency (SUCCESS payments), what went back, and the rest."""

    currency: str
    payments: int  # every payment in this currency, whatever its status
    paid_count: int
    paid: int  # minor units
    refunded: int
    # Chargebacks withdrawn and not reinstated (a dispute lost or still open), as the
    # overview's net counts them.
    withdrawn: int = 0

    @property
    def net(self) -> int:
        return self.paid - self.refunded - self.withdrawn


@dataclass
class CustomerRow:
    """One line of the customers list."""

    email: str
    payments: int
    last_payment_at: datetime
    totals: list[CurrencyTotals] = field(default_factory=list)


def _of_merchant(stmt: Select, merchant_id: int, livemode: bool) -> Select:
    stmt = stmt.where(Payment.merchant_id == merchant_id, Payment.livemode == livemode)
    return within_one_merchant(stmt)


def _payments_of(merchant_id: int, livemode: bool, email: str) -> Select:
    return _of_merchant(select(Payment), merchant_id, livemode).where(
        Payment.customer_email == normalize_email(email)
    )


def payments_page(
    merchant_id: int,
    livemode: bool,
    email: str,
    *,
    after: str | None = None,
    before: str | None = None,
) -> Page:
    """One page of the customer's payments, newest first (BadCursor: not this list's)."""
    stmt = _payments_of(merchant_id, livemode, email)
    return keyset_page(stmt, Payment, CURSOR_SCOPE, after=after, before=before)


def _totals_columns():
    paid = Payment.status == PaymentStatus.SUCCESS.value
    return (
        Payment.currency,
        func.count(),
        func.coalesce(func.sum(case((paid, 1), else_=0)), 0),
        func.coalesce(func.sum(case((paid, Payment.amount), else_=0)), 0),
        func.coalesce(func.sum(case((paid, Payment.refunded_amount), else_=0)), 0),
    )


def totals(merchant_id: int, livemode: bool, email: str) -> list[CurrencyTotals]:
    """The customer's payments summed per currency, by currency code."""
    stmt = (
        _of_merchant(select(*_totals_columns()), merchant_id, livemode)
        .where(Payment.customer_email == normalize_email(email))
        .group_by(Payment.currency)
        .order_by(Payment.currency)
    )
    found = [CurrencyTotals(*map_row(row)) for row in db.session.execute(stmt)]
    stored = normalize_email(email) or ""
    withdrawn = _withdrawn(merchant_id, livemode, [stored])
    return [replace(t, withdrawn=withdrawn.get((stored, t.currency), 0)) for t in found]


def _withdrawn(merchant_id: int, livemode: bool, emails: list[str]) -> dict[tuple[str, str], int]:
    """Chargebacks withdrawn and not reinstated, by (email, currency), of these customers'
    payments: each payment's disputes read through ix_disputes_payment."""
    email = Payment.customer_email
    stmt = (
        _of_merchant(
            select(email, Dispute.currency, func.sum(Dispute.amount)), merchant_id, livemode
        )
        .join(Dispute, Dispute.payment_id == Payment.id)
        .where(
            email.in_(emails),
            Dispute.funds_withdrawn_at.is_not(None),
            Dispute.funds_reinstated_at.is_(None),
        )
        .group_by(email, Dispute.currency)
    )
    # Payments first, as joined (STRAIGHT_JOIN), then each one's disputes by the payment: with
    # few disputes MariaDB scanned them all, every merchant's, and looked up each one's payment;
    # the page's customers' payments, read through the merchant's email index, are what the
    # list's totals read anyway.
    for dialect in MYSQL_FAMILY:
        stmt = stmt.prefix_with("STRAIGHT_JOIN", dialect=dialect)
    stmt = index_hint(stmt, Dispute, "FORCE INDEX (ix_disputes_payment)")
    return {(e, currency): int(n) for e, currency, n in db.session.execute(stmt)}


def map_row(row) -> tuple:
    currency, payments, paid_count, paid, refunded = row
    return currency, int(payments), int(paid_count), int(paid), int(refunded)


@dataclass(frozen=True)
class Latest:
    """A customer's latest refunds or disputes (at most RELATED_LIMIT), and how many there are in
    all: the page says when it shows only some."""

    rows: list
    total: int

    @property
    def cut(self) -> bool:
        return self.total > len(self.rows)


def _latest(model, merchant_id: int, livemode: bool, email: str) -> Latest:
    """The customer's latest rows of `model` (Refund or Dispute), each with its payment; counted
    only when there are more than the page shows."""
    ids = _payments_of(merchant_id, livemode, email).with_only_columns(Payment.id)
    mine = model.payment_id.in_(ids)
    stmt = (
        select(model)
        .options(joinedload(model.payment))
        .where(mine)
        .order_by(model.created_at.desc(), model.id.desc())
        .limit(RELATED_LIMIT + 1)
    )
    rows = list(db.session.scalars(stmt))
    if len(rows) <= RELATED_LIMIT:
        return Latest(rows, len(rows))
    total = db.session.scalar(select(func.count()).select_from(model).where(mine)) or 0
    return Latest(rows[:RELATED_LIMIT], int(total))


def refunds(merchant_id: int, livemode: bool, email: str) -> Latest:
    """The customer's latest refunds, each with its payment."""
    return _latest(Refund, merchant_id, livemode, email)


def disputes(merchant_id: int, livemode: bool, email: str) -> Latest:
    """The customer's latest disputes, each with its payment."""
    return _latest(Dispute, merchant_id, livemode, email)


@dataclass
class CustomerPage:
    rows: list[CustomerRow]
    next_after: str | None  # the email the next page starts after


def customers_page(
    merchant_id: int, livemode: bool, *, prefix: str | None = None, after: str | None = None
) -> CustomerPage:
    """One page of the merchant's customers in email order, those starting with `prefix` (any
    case), after the email `after`: read in index order and grouped as read, so LIMIT stops the
    walk after one page; then their totals for that page's emails only."""
    email = Payment.customer_email
    stmt = _of_merchant(
        select(email, func.count(), func.max(Payment.created_at)), merchant_id, livemode
    ).where(email.is_not(None))
    if prefix:
        stmt = stmt.where(email_starts_with(prefix))
    if after:
        stmt = stmt.where(email > normalize_email(after))
    stmt = stmt.group_by(email).order_by(email).limit(PAGE_SIZE + 1)
    rows = [CustomerRow(e, int(n), last) for e, n, last in db.session.execute(stmt)]
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    if rows:
        by_email = {r.email: r for r in rows}
        per_currency = (
            _of_merchant(select(email, *_totals_columns()), merchant_id, livemode)
            .where(email.in_(list(by_email)))
            .group_by(email, Payment.currency)
            .order_by(email, Payment.currency)
        )
        withdrawn = _withdrawn(merchant_id, livemode, list(by_email))
        for row in db.session.execute(per_currency):
            t = CurrencyTotals(*map_row(row[1:]))
            by_email[row[0]].totals.append(
                replace(t, withdrawn=withdrawn.get((row[0], t.currency), 0))
            )
    return CustomerPage(rows, rows[-1].email if more else None)
