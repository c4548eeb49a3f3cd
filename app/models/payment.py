"""Payments: their five statuses and the one table of moves allowed between them (DESIGN.md),
the status history, conflicts with the PSP, and the idempotency records of the API.

The table lives beside the column it governs; `app/payments/state.py` is the only code that
moves a payment along it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from app.extensions import db
from app.models.attempt import PaymentAttempt
from app.models.base import (
    BigId,
    ExactString,
    Timestamp,
    Transitions,
    indexes_across_merchants,
    merchant_indexes_only,
    public_id,
    utcnow,
)
from app.models.merchant import Merchant


class PaymentStatus(StrEnum):
    CREATED = "CREATED"
    INITIATED = "INITIATED"
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


# Failure reasons that are the shopper's or merchant's decision, not a failure to pay (the
# codes of app/payments/failure_reasons.py; here for the layers below it, e.g. reporting).
CANCELED_FAILURE_REASONS = frozenset({"canceled_by_shopper", "canceled_by_merchant"})


class PaymentType(StrEnum):
    SALE = "SALE"
    RECC = "RECC"


class StatusSource(StrEnum):
    """Who caused a status change; stored on every history row."""

    API = "api"
    WEBHOOK = "webhook"
    RETURN = "return"
    RECON = "recon"
    DASHBOARD = "dashboard"


FINAL_STATUSES = frozenset({PaymentStatus.SUCCESS, PaymentStatus.FAILED})


class RefundState(StrEnum):
    """How much of a SUCCESS payment its succeeded refunds gave back (None: nothing). Stored
    beside `refunded_amount` so the lists filter on it with an equality an index serves
    (`refunded_amount = amount` compares two columns: no index can)."""

    PARTIAL = "partial"
    FULL = "full"

    @classmethod
    def of(cls, refunded: int, amount: int) -> RefundState | None:
        if refunded <= 0:
            return None
        return cls.FULL if refunded >= amount else cls.PARTIAL


PAYMENT_TRANSITIONS = Transitions(
    {
        PaymentStatus.CREATED: frozenset({PaymentStatus.INITIATED, PaymentStatus.FAILED}),
        PaymentStatus.INITIATED: frozenset(
            {PaymentStatus.PENDING, PaymentStatus.SUCCESS, PaymentStatus.FAILED}
        ),
        PaymentStatus.PENDING: frozenset({PaymentStatus.SUCCESS, PaymentStatus.FAILED}),
        PaymentStatus.SUCCESS: frozenset(),
        PaymentStatus.FAILED: frozenset(),
    }
)


PAYMENT_ID_PREFIX = "pay_"


def new_payment_id() -> str:
    return public_id(PAYMENT_ID_PREFIX)


def normalize_email(email: str | None) -> str | None:
    """An email as PayBridge keeps and compares it: a customer is one address whatever its case,
    so every one is stored, and looked up, in lower case (migration 0019_list_search)."""
    if email is None:
        return None
    return email.strip().lower()


class Payment(db.Model):
    __tablename__ = "payments"
    __table_args__ = (
        # A merchant's test and live payments are apart: each mode has its own references.
        UniqueConstraint("merchant_id", "livemode", "merchant_reference"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("refunded_amount >= 0", name="refunded_amount_not_negative"),
        # Lists show one mode (test or live data): merchant and mode lead their indexes
        # (migrations 0003_dashboard, 0013_mode_scoped_keys, 0015_mode_indexes); the API's and
        # the dashboard's list of a merchant's payments share the first.
        Index("ix_payments_merchant_mode_created", "merchant_id", "livemode", "created_at", "id"),
        Index(
            "ix_payments_merchant_status_created", "merchant_id", "livemode", "status", "created_at"
        ),
        Index("ix_payments_status_updated", "status", "updated_at"),
        # One customer's payments newest first; the customers list in email order (0019).
        Index(
            "ix_payments_merchant_email",
            "merchant_id",
            "livemode",
            "customer_email",
            "created_at",
            "id",
        ),
        Index("ix_payments_created", "created_at", "id"),
        Index("ix_payments_livemode_created", "livemode", "created_at", "id"),
        Index(
            "ix_payments_merchant_currency_created",
            "merchant_id",
            "livemode",
            "currency",
            "created_at",
        ),
        Index(
            "ix_payments_merchant_type_created",
            "merchant_id",
            "livemode",
            "payment_type",
            "created_at",
        ),
        # An amount range's matches sorted by (created_at, id) from the index alone (0033).
        Index(
            "ix_payments_merchant_amount",
            "merchant_id",
            "livemode",
            "amount",
            "currency",
            "created_at",
            "id",
        ),
        Index(
            "ix_payments_merchant_status_updated", "merchant_id", "livemode", "status", "updated_at"
        ),
        Index("ix_payments_status_created", "livemode", "status", "created_at"),
        Index("ix_payments_currency_created", "livemode", "currency", "created_at"),
        Index("ix_payments_merchant_reference", "merchant_reference"),
        Index("ix_payments_customer_email", "customer_email"),
        # Refunded and partially refunded payments of one mode, newest first (0017).
        Index(
            "ix_payments_merchant_refund_created",
            "merchant_id",
            "livemode",
            "refund_state",
            "created_at",
            "id",
        ),
        Index("ix_payments_refund_created", "livemode", "refund_state", "created_at", "id"),
        # Disputed payments (open, lost, won) of one mode, newest first (0030).
        Index(
            "ix_payments_merchant_dispute_created",
            "merchant_id",
            "livemode",
            "dispute_state",
            "created_at",
            "id",
        ),
        Index("ix_payments_dispute_created", "livemode", "dispute_state", "created_at", "id"),
        # Searched and filtered by payment method and failure reason, one mode, newest first
        # (0018): a merchant's list and an operator's across merchants.
        Index(
            "ix_payments_merchant_method_created",
            "merchant_id",
            "livemode",
            "method_type",
            "created_at",
            "id",
        ),
        Index("ix_payments_method_created", "livemode", "method_type", "created_at", "id"),
        Index(
            "ix_payments_merchant_brand_created",
            "merchant_id",
            "livemode",
            "card_brand",
            "created_at",
            "id",
        ),
        Index(
            "ix_payments_merchant_last4_created",
            "merchant_id",
            "livemode",
            "card_last4",
            "created_at",
            "id",
        ),
        Index("ix_payments_brand_created", "livemode", "card_brand", "created_at", "id"),
        Index("ix_payments_last4_created", "livemode", "card_last4", "created_at", "id"),
        Index(
            "ix_payments_merchant_failure_created",
            "merchant_id",
            "livemode",
            "failure_reason",
            "created_at",
            "id",
        ),
        Index("ix_payments_failure_created", "livemode", "failure_reason", "created_at", "id"),
        # A refund event names the payment intent: it finds its payment (0012).
        Index("ix_payments_psp_payment_intent", "psp_payment_intent_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(ExactString(32), unique=True, default=new_payment_id)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    merchant_reference: Mapped[str] = mapped_column(ExactString(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    payment_type: Mapped[str] = mapped_column(String(4), default=PaymentType.SALE.value)
    # RECC only: the billing period.
    interval: Mapped[str | None] = mapped_column(String(5))
    interval_count: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(String(500))
    customer_email: Mapped[str | None] = mapped_column(String(254))
    success_url: Mapped[str] = mapped_column(String(2000))
    cancel_url: Mapped[str] = mapped_column(String(2000))
    # `metadata` is taken by SQLAlchemy's declarative base; the column keeps the API's name.
    metadata_: Mapped[dict] = mapped_column("metadata", db.JSON, default=dict)

    status: Mapped[str] = mapped_column(String(10), default=PaymentStatus.CREATED.value)
    # Grows by one with every status change; notifications carry it so clients drop stale ones.
    status_version: Mapped[int] = mapped_column(Integer, default=1)

    psp: Mapped[str] = mapped_column(String(20), default="stripe")
    # Stripe's mode, from the API key that created it: which Stripe keys and events serve it.
    livemode: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    psp_session_id: Mapped[str | None] = mapped_column(ExactString(255), unique=True)
    psp_payment_intent_id: Mapped[str | None] = mapped_column(ExactString(255))
    psp_subscription_id: Mapped[str | None] = mapped_column(ExactString(255), index=True)
    checkout_url: Mapped[str | None] = mapped_column(String(2000))
    psp_expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # What the PSP create request carries that settings could change between a lost answer and
    # its retry, frozen when the payment is stored so every retry sends the identical request
    # under its idempotency key (None on payments from before 0012: computed as then). Read
    # only by a retried registration: deferred, so the webhook and read paths never load them.
    checkout_expires_at: Mapped[datetime | None] = mapped_column(
        Timestamp, deferred=True, deferred_group="checkout_request"
    )
    checkout_success_url: Mapped[str | None] = mapped_column(
        String(2000), deferred=True, deferred_group="checkout_request"
    )
    checkout_cancel_url: Mapped[str | None] = mapped_column(
        String(2000), deferred=True, deferred_group="checkout_request"
    )
    failure_code: Mapped[str | None] = mapped_column(String(100))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    # Why it FAILED, as one of app/payments/failure_reasons.py's codes (NULL unless FAILED);
    # failure_code/failure_message above keep the PSP's own words.
    failure_reason: Mapped[str | None] = mapped_column(String(24))
    # How the shopper paid, from the PSP's charge (payment_method_details): its type, card
    # brand and last 4 as columns the lists filter and search on, the rest (expiry, funding,
    # country, wallet, 3-D Secure, SEPA mandate id and reference) in `payment_method`. Until
    # paid, the columns name the last declined try's method (searched by it; 0034 backfills).
    method_type: Mapped[str | None] = mapped_column(String(32))
    card_brand: Mapped[str | None] = mapped_column(String(20))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    payment_method: Mapped[dict | None] = mapped_column(db.JSON)
    # When the shopper left the hosted page by its back link (the cancel return). The checkout
    # stays open, as on Stripe (the shopper may come back and pay); if it closes unpaid, the
    # payment FAILED as canceled_by_shopper rather than expired.
    shopper_canceled_at: Mapped[datetime | None] = mapped_column(Timestamp)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    # RefundState of refunded_amount against amount; moved with it by `count_refunded` only.
    refund_state: Mapped[str | None] = mapped_column(String(7))
    # DisputeState of the payment's disputes; moved by app/disputes/service.py only.
    dispute_state: Mapped[str | None] = mapped_column(String(4))
    # RECC renewals point at the subscription's first payment.
    parent_payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), index=True)

    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    finalized_at: Mapped[datetime | None] = mapped_column(Timestamp)

    merchant: Mapped[Merchant] = relationship()
    history: Mapped[list[PaymentStatusChange]] = relationship(
        back_populates="payment", order_by="PaymentStatusChange.id"
    )
    # Every try to pay on the hosted page, in the order they happened.
    attempts: Mapped[list[PaymentAttempt]] = relationship(
        order_by=(PaymentAttempt.attempted_at, PaymentAttempt.id), viewonly=True
    )

    @validates("customer_email")
    def _lower_email(self, _key: str, email: str | None) -> str | None:
        return normalize_email(email)

    @property
    def status_enum(self) -> PaymentStatus:
        return PaymentStatus(self.status)

    @property
    def is_final(self) -> bool:
        return self.status_enum.is_final

    def count_refunded(self, delta: int) -> None:
        """A refund succeeded (delta > 0) or a succeeded one failed after all (delta < 0)."""
        self.refunded_amount += delta
        state = RefundState.of(self.refunded_amount, self.amount)
        self.refund_state = state.value if state else None

    @property
    def psp_idempotency_key(self) -> str:
        """The key for registering this payment at the PSP: every retry reuses it."""
        return f"paybridge-create-{self.public_id}"

    def __repr__(self) -> str:
        return f"<Payment {self.public_id} {self.status}>"


# The payments indexes a merchant's statement never reads (an operator's, a PSP id's lookup).
ACROSS_MERCHANTS = indexes_across_merchants(Payment)


def within_one_merchant(stmt: Select) -> Select:
    """`stmt`, whose WHERE holds one merchant's id, reading payments only through indexes that
    lead with the merchant (they serve every filter, search and order of a merchant's lists)."""
    return merchant_indexes_only(stmt, Payment)


def could_start_email(text: str) -> bool:
    """Whether `text` can be the beginning of an email address: "ann", "ann@", "ann@exa"."""
    return bool(text) and " " not in text and text.count("@") <= 1


def email_starts_with(prefix: str) -> ColumnElement[bool]:
    """Payments whose customer's email begins with `prefix`, in any case: emails are kept in
    lower case (0019_list_search), so "Ann" finds ann@example.com; `%` and `_` match
    themselves, and (merchant_id, livemode, customer_email, …) serves it as a range. The one
    rule of the dashboard's search, its customers list and the API's filter."""
    return Payment.customer_email.startswith(normalize_email(prefix) or "", autoescape=True)


class PaymentStatusChange(db.Model):
    """One row per status change (the first row records creation, from_status NULL)."""

    __tablename__ = "payment_status_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(10))
    to_status: Mapped[str] = mapped_column(String(10))
    status_version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(String(500))
    psp_event_id: Mapped[str | None] = mapped_column(ExactString(255))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    payment: Mapped[Payment] = relationship(back_populates="history")


class IdempotencyRecord(db.Model):
    """The first answer to an Idempotency-Key, replayed for every retry with the same body."""

    __tablename__ = "idempotency_keys"
    # Per mode, as on Stripe: a test request never replays a live request's answer.
    __table_args__ = (UniqueConstraint("merchant_id", "livemode", "idempotency_key"),)

    STATE_IN_PROGRESS = "in_progress"
    STATE_COMPLETED = "completed"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    idempotency_key: Mapped[str] = mapped_column(ExactString(255))
    livemode: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(255))
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(12), default=STATE_IN_PROGRESS)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict | None] = mapped_column(db.JSON)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)

    payment: Mapped[Payment | None] = relationship()


class PaymentConflict(db.Model):
    """A PSP fact PayBridge could not apply and must not drop, e.g. paid after we FAILED it."""

    __tablename__ = "payment_conflicts"
    __table_args__ = (Index("ix_payment_conflicts_resolved_created", "resolved_at", "created_at"),)

    KIND_PAID_AFTER_FAILED = "paid_after_failed"
    KIND_MISMATCH = "mismatch"

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), index=True)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    kind: Mapped[str] = mapped_column(String(30))
    psp_event_id: Mapped[str | None] = mapped_column(ExactString(255))
    psp_session_id: Mapped[str | None] = mapped_column(ExactString(255))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(Timestamp)
    resolution: Mapped[str | None] = mapped_column(String(500))

    payment: Mapped[Payment | None] = relationship()
