"""The shop's subscription plan: sold like a print, paid as a RECC payment through PayBridge.

The plan lives in code (one plan, no catalogue table); an order for it has `plan` set and one
item. The first charge is the order's payment; every renewal is a payment of the PayBridge
subscription, which the order page reads in-process like the order's own payment.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.errors import PayBridgeError
from app.extensions import db
from app.models import Payment, Subscription
from app.shop.models import Order, OrderItem, OrderStatus, ShopCustomer
from app.shop.services import DEMO_MERCHANT_NAME, ShopError, find_order_by_token, order_payment


@dataclass(frozen=True)
class Plan:
    slug: str
    name: str
    price: int  # minor units, per period
    currency: str
    interval: str  # day | week | month | year
    interval_count: int
    description: str

    @property
    def every(self) -> str:
        """ "month", or "3 months"."""
        if self.interval_count == 1:
            return self.interval
        return f"{self.interval_count} {self.interval}s"


PLANS = {
    "print-club": Plan(
        slug="print-club",
        name="Print of the Month Club",
        price=1900,
        currency="EUR",
        interval="month",
        interval_count=1,
        description="A new 30×40 cm archival print in your letterbox every month. Cancel any time.",
    ),
}


def get_plan(slug: str) -> Plan | None:
    return PLANS.get(slug)


def place_plan_order(customer: ShopCustomer, plan: Plan, token: str) -> tuple[Order, bool]:
    """An order for the plan, once per subscribe form (the token): (order, created)."""
    existing = find_order_by_token(customer.id, token)
    if existing is not None:
        if existing.plan != plan.slug:
            raise ShopError("This form was used for another order. Please start again.")
        return existing, False
    order = Order(
        customer_id=customer.id,
        checkout_token=token,
        status=OrderStatus.PENDING_PAYMENT,
        total_amount=plan.price,
        currency=plan.currency,
        email=customer.email,
        plan=plan.slug,
        items=[OrderItem(product_id=None, name=plan.name, unit_price=plan.price, quantity=1)],
    )
    db.session.add(order)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        existing = find_order_by_token(customer.id, token)
        if existing is None:
            raise
        return existing, False
    return order, True


def plan_payment_params(order: Order, base_url: str) -> dict:
    """The order's first payment: RECC with the plan's period, deterministic for the order."""
    plan = get_plan(order.plan)
    if plan is None:
        raise ShopError("This subscription plan is no longer sold.")
    return {
        "merchant_reference": order.reference,
        "amount": order.total_amount,
        "currency": order.currency,
        "payment_type": "RECC",
        "interval": plan.interval,
        "interval_count": plan.interval_count,
        "description": f"{DEMO_MERCHANT_NAME}: {plan.name} (every {plan.every})",
        "customer_email": order.email,
        "success_url": f"{base_url}/orders/{order.id}/success",
        "cancel_url": f"{base_url}/orders/{order.id}/cancelled",
        "metadata": {"order_id": str(order.id), "source": "demo-shop", "plan": plan.slug},
    }


@dataclass(frozen=True)
class SubscriptionView:
    """What the order page shows about the order's subscription."""

    status: str
    next_billing: object  # datetime | None
    cancel_at_period_end: bool
    charges: list[Payment]


def order_subscription(order: Order) -> SubscriptionView | None:
    """The PayBridge subscription the order's first payment started, with its charges."""
    if not order.plan:
        return None
    payment = order_payment(order)
    if payment is None or not payment.psp_subscription_id:
        return None
    subscription = db.session.execute(
        select(Subscription).where(Subscription.first_payment_id == payment.id)
    ).scalar_one_or_none()
    if subscription is None:
        return None
    charges = list(
        db.session.execute(
            select(Payment)
            .where((Payment.id == payment.id) | (Payment.parent_payment_id == payment.id))
            .order_by(Payment.created_at, Payment.id)
        ).scalars()
    )
    active = subscription.status != Subscription.STATUS_CANCELLED
    return SubscriptionView(
        status=subscription.status,
        next_billing=subscription.current_period_end
        if active and not subscription.cancel_at_period_end
        else None,
        cancel_at_period_end=subscription.cancel_at_period_end,
        charges=charges,
    )


def cancel_order_subscription(order: Order) -> Subscription:
    """Cancel the order's subscription at period end through PayBridge (in-process); commits."""
    from app.subscriptions import service

    payment = order_payment(order) if order.plan else None
    subscription = None
    if payment is not None:
        subscription = db.session.execute(
            select(Subscription).where(Subscription.first_payment_id == payment.id)
        ).scalar_one_or_none()
    if subscription is None:
        raise ShopError("This order has no subscription to cancel.")
    if subscription.status == Subscription.STATUS_CANCELLED or subscription.cancel_at_period_end:
        raise ShopError("Your subscription is already cancelled.")
    try:
        return service.cancel_subscription(subscription.id, at_period_end=True)
    except PayBridgeError as error:
        raise ShopError(
            "We could not reach the payment provider to cancel just now. Nothing changed: "
            "please try again in a moment.",
            retryable=error.spec.retryable,
        ) from error
