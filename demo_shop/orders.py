"""Orders: what shoppers buy, placed once per checkout form. Services flush; callers commit."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from demo_shop.cart import PricedCart
from demo_shop.catalogue import Plan
from demo_shop.extensions import db
from demo_shop.models import Customer, Order, OrderItem, RenewalCharge


class ShopError(Exception):
    """Something the shopper must be told, in words; `retryable` means "try again soon"."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


def find_order_by_token(customer_id: int, token: str) -> Order | None:
    return db.session.scalar(
        select(Order).where(Order.customer_id == customer_id, Order.checkout_token == token)
    )


def customer_order(customer_id: int, order_id: int) -> Order | None:
    """The order if it is this shopper's; someone else's is as good as missing."""
    order = db.session.get(Order, order_id)
    return order if order is not None and order.customer_id == customer_id else None


def customer_orders(customer_id: int) -> list[Order]:
    return list(
        db.session.scalars(
            select(Order)
            .where(Order.customer_id == customer_id)
            .order_by(Order.created_at.desc(), Order.id.desc())
        )
    )


def place_order(customer: Customer, cart: PricedCart, token: str) -> Order:
    """The cart as an order, once per checkout form (its token)."""
    existing = find_order_by_token(customer.id, token)
    if existing is not None:
        return existing
    if token != cart.token:
        raise ShopError("Your cart changed since you opened the checkout. Please check it again.")
    if cart.is_empty:
        raise ShopError("Your cart is empty.")
    if cart.currency is None:
        raise ShopError("Items priced in different currencies cannot be paid in one order.")
    items = [
        OrderItem(
            product_id=line.product.id,
            name=line.product.name,
            unit_price=line.product.price,
            quantity=line.quantity,
        )
        for line in cart.lines
    ]
    return _add_order(customer, token, cart.total, cart.currency, items)


def place_plan_order(customer: Customer, plan: Plan, token: str) -> Order:
    """An order for a subscription plan, once per subscribe form (its token)."""
    existing = find_order_by_token(customer.id, token)
    if existing is not None:
        if existing.plan != plan.slug:
            raise ShopError("This form was used for another order. Please start again.")
        return existing
    item = OrderItem(name=plan.name, unit_price=plan.price, quantity=1)
    return _add_order(customer, token, plan.price, plan.currency, [item], plan=plan.slug)


def _add_order(customer, token, total, currency, items, plan=None) -> Order:
    order = Order(
        customer_id=customer.id,
        checkout_token=token,
        total_amount=total,
        currency=currency,
        email=customer.email,
        plan=plan,
        items=items,
    )
    db.session.add(order)
    try:
        db.session.flush()
    except IntegrityError:
        # The same form submitted twice at once: the unique (customer, token) let one in.
        db.session.rollback()
        existing = find_order_by_token(customer.id, token)
        if existing is None:
            raise
        return existing
    return order


def reorder_items(order: Order) -> list[tuple[int, int]]:
    """(product_id, quantity) pairs to put a past order's prints back in the cart."""
    return [(item.product_id, item.quantity) for item in order.items if item.product_id]


def order_for_payment(payment_id: str) -> Order | None:
    """The order a payment belongs to: its own payment, or one of its renewal charges."""
    order = db.session.scalar(select(Order).where(Order.payment_id == payment_id))
    if order is not None:
        return order
    return db.session.scalar(
        select(Order).join(RenewalCharge).where(RenewalCharge.payment_id == payment_id)
    )
