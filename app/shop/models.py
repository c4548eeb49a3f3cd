"""The shop's own tables: products, shoppers, orders and the notifications it has received."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.models.base import Timestamp, utcnow

_BigId = BigInteger().with_variant(Integer, "sqlite")


class ShopSetting(db.Model):
    """Small key/value settings of the shop, e.g. which PayBridge merchant it sells as."""

    __tablename__ = "shop_settings"

    key: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(500))


class Product(db.Model):
    __tablename__ = "shop_products"
    __table_args__ = (
        CheckConstraint("price > 0", name="price_positive"),
        Index("ix_shop_products_active_position", "active", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    # File name under static/shop/products/.
    image: Mapped[str] = mapped_column(String(120))
    price: Mapped[int] = mapped_column(Integer)  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    active: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class ShopCustomer(db.Model):
    """A shopper's account; separate from dashboard users on purpose."""

    __tablename__ = "shop_customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(Timestamp)

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
    __tablename__ = "shop_orders"
    __table_args__ = (
        # One order per checkout form: a double submit or a refresh finds the first one.
        UniqueConstraint("customer_id", "checkout_token"),
        CheckConstraint("total_amount > 0", name="total_positive"),
        Index("ix_shop_orders_customer_created", "customer_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("shop_customers.id"))
    checkout_token: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default=OrderStatus.PENDING_PAYMENT)
    total_amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    email: Mapped[str] = mapped_column(String(254))
    # The PayBridge payment (public id) once it exists, and the last status_version applied.
    payment_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    payment_status_version: Mapped[int] = mapped_column(Integer, default=0)
    failure_message: Mapped[str | None] = mapped_column(String(500))
    # A subscription order: the plan's slug (app/shop/plans.py); None for prints.
    plan: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(Timestamp)

    customer: Mapped[ShopCustomer] = relationship()
    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", order_by="OrderItem.id", cascade="all, delete-orphan"
    )

    @property
    def reference(self) -> str:
        """The merchant_reference PayBridge knows this order by."""
        return f"order-{self.id}"

    @property
    def is_final(self) -> bool:
        return self.status in OrderStatus.FINAL


class OrderItem(db.Model):
    __tablename__ = "shop_order_items"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price > 0", name="unit_price_positive"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("shop_orders.id"), index=True)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("shop_products.id"))
    # Copied from the product: the order keeps what was bought even if the catalogue changes.
    name: Mapped[str] = mapped_column(String(120))
    unit_price: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)

    order: Mapped[Order] = relationship(back_populates="items")
    product: Mapped[Product | None] = relationship()

    @property
    def line_total(self) -> int:
        return self.unit_price * self.quantity


class ReceivedNotification(db.Model):
    """Every verified notification from PayBridge, once by webhook-id (duplicates are dropped)."""

    __tablename__ = "shop_notifications"

    OUTCOME_APPLIED = "applied"
    OUTCOME_STALE = "stale"
    OUTCOME_UNKNOWN_ORDER = "unknown_order"
    OUTCOME_IGNORED = "ignored"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(100), unique=True)
    event_type: Mapped[str] = mapped_column(String(50))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("shop_orders.id"), index=True)
    payment_id: Mapped[str | None] = mapped_column(String(32))
    status_version: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(20))
    received_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
