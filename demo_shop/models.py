"""The shop's own tables: its catalogue, shoppers, orders, and what PayBridge told it.

An order remembers the newest state of its PayBridge payment that the shop has seen
(`payment_status`, guarded by `payment_status_version`), so pages never need PayBridge to show
it. Refunds and the renewal charges of a subscription arrive as notifications and are kept here
too: the shop shows them from its own store.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from demo_shop.extensions import db


def utcnow() -> datetime:
    """Naive UTC, as SQLite stores it."""
    return datetime.now(UTC).replace(tzinfo=None)


class Product(db.Model):
    __tablename__ = "products"
    __table_args__ = (CheckConstraint("price > 0", name="price_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    image: Mapped[str] = mapped_column(String(120))  # a file in static/products/
    price: Mapped[int]  # minor units (cents)
    currency: Mapped[str] = mapped_column(String(3))
    active: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(default=0)


class Customer(db.Model):
    """A shopper's account."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class OrderStatus:
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    FAILED = "FAILED"

    FINAL = frozenset({PAID, FAILED})


class Order(db.Model):
    __tablename__ = "orders"
    __table_args__ = (
        # One order per checkout form: a double submit or a refresh finds the first one.
        UniqueConstraint("customer_id", "checkout_token"),
        CheckConstraint("total_amount > 0", name="total_positive"),
        Index("ix_orders_customer_created", "customer_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    checkout_token: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default=OrderStatus.PENDING_PAYMENT)
    total_amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    email: Mapped[str] = mapped_column(String(254))
    plan: Mapped[str | None] = mapped_column(String(40))  # a subscription plan's slug
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_at: Mapped[datetime | None]

    # The PayBridge payment, as last seen in an API answer or a notification.
    payment_id: Mapped[str | None] = mapped_column(String(40), unique=True)
    payment_status: Mapped[str | None] = mapped_column(String(20))
    payment_status_version: Mapped[int] = mapped_column(default=0)
    checkout_url: Mapped[str | None] = mapped_column(String(2000))
    checkout_expires_at: Mapped[datetime | None]
    failure_message: Mapped[str | None] = mapped_column(String(500))
    subscription_id: Mapped[str | None] = mapped_column(String(40))

    customer: Mapped[Customer] = relationship()
    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", order_by="OrderItem.id", cascade="all, delete-orphan"
    )
    refunds: Mapped[list[Refund]] = relationship(order_by="Refund.id")
    renewals: Mapped[list[RenewalCharge]] = relationship(
        order_by="[RenewalCharge.charged_at, RenewalCharge.id]"
    )

    @property
    def reference(self) -> str:
        """The merchant_reference PayBridge knows this order by."""
        return f"order-{self.id}"

    @property
    def is_final(self) -> bool:
        return self.status in OrderStatus.FINAL

    @property
    def refunded_amount(self) -> int:
        """What PayBridge has refunded of this order's own payment (succeeded refunds)."""
        return sum(
            r.amount
            for r in self.refunds
            if r.status == "succeeded" and r.payment_id == self.payment_id
        )


class OrderItem(db.Model):
    __tablename__ = "order_items"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price > 0", name="unit_price_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))
    # Copied from the product: the order keeps what was bought even if the catalogue changes.
    name: Mapped[str] = mapped_column(String(120))
    unit_price: Mapped[int]
    quantity: Mapped[int]

    order: Mapped[Order] = relationship(back_populates="items")

    @property
    def line_total(self) -> int:
        return self.unit_price * self.quantity


class Refund(db.Model):
    """A refund of one of the order's payments, as its latest `refund.*` notification says."""

    __tablename__ = "refunds"

    id: Mapped[int] = mapped_column(primary_key=True)
    refund_id: Mapped[str] = mapped_column(String(40), unique=True)  # PayBridge's re_…
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    payment_id: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))  # succeeded | failed
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RenewalCharge(db.Model):
    """A later charge of a subscription order: a RECC payment of its own at PayBridge."""

    __tablename__ = "renewal_charges"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    payment_id: Mapped[str] = mapped_column(String(40), unique=True)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))
    status_version: Mapped[int]
    failure_message: Mapped[str | None] = mapped_column(String(500))
    charged_at: Mapped[datetime]


class ReceivedNotification(db.Model):
    """Every verified notification, once by its webhook-id, with what the shop did with it."""

    __tablename__ = "received_notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(100), unique=True)
    event_type: Mapped[str] = mapped_column(String(50))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    payment_id: Mapped[str | None] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(20))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class EventPosition(db.Model):
    """The newest PayBridge event the shop has applied (one row), pushed to /notify or pulled
    through the Events API: where the next catch-up starts (demo_shop/catch_up.py)."""

    __tablename__ = "event_position"

    id: Mapped[int] = mapped_column(primary_key=True)  # always 1
    event_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]  # naive UTC: that event's time, or the first start's
    caught_up_at: Mapped[datetime | None]  # the last catch-up that finished
