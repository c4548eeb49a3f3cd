"""A subscription order's plan at PayBridge: its state, its charges, and cancelling it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from demo_shop.models import Order
from demo_shop.orders import ShopError
from demo_shop.paybridge import PayBridgeError
from demo_shop.payments import parse_time, paybridge_client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubscriptionState:
    """What the order page says about the subscription, read from PayBridge."""

    status: str  # incomplete | active | past_due | cancelled
    next_charge: datetime | None
    ends_at_period_end: bool


def subscription_state(order: Order) -> SubscriptionState | None:
    """The order's subscription as PayBridge has it now; None if it has none or cannot say."""
    if not order.subscription_id:
        return None
    try:
        subscription = paybridge_client().get_subscription(order.subscription_id)
    except (PayBridgeError, ShopError) as error:
        log.warning("could not read %s: %s", order.subscription_id, error)
        return None
    return _subscription_state(subscription)


def cancel_subscription(order: Order) -> SubscriptionState:
    """Stop charging the order's subscription once the period already paid for ends."""
    if not order.subscription_id:
        raise ShopError("This order has no subscription to cancel.")
    client = paybridge_client()
    try:
        subscription = client.cancel_subscription(order.subscription_id, at_period_end=True)
    except PayBridgeError as error:
        raise ShopError(
            "We could not cancel your subscription just now. Nothing changed: please try "
            "again in a moment.",
            retryable=error.retryable,
        ) from error
    return _subscription_state(subscription)


def _subscription_state(subscription: dict) -> SubscriptionState:
    status = subscription["status"]
    ending = subscription["cancel_at_period_end"]
    charging = status != "cancelled" and not ending
    return SubscriptionState(
        status=status,
        next_charge=parse_time(subscription["current_period_end"]) if charging else None,
        ends_at_period_end=ending and status != "cancelled",
    )


@dataclass(frozen=True)
class Charge:
    what: str  # "First payment" | "Renewal"
    charged_at: datetime
    amount: int
    currency: str
    status: str  # the payment's status at PayBridge


def subscription_charges(order: Order) -> list[Charge]:
    """Every charge of the order's subscription the shop has heard of: the first payment, then
    each renewal PayBridge notified."""
    charges = [
        Charge("Renewal", renewal.charged_at, renewal.amount, renewal.currency, renewal.status)
        for renewal in order.renewals
    ]
    if order.payment_status == "SUCCESS":
        first = order.paid_at or order.created_at
        charges.insert(
            0, Charge("First payment", first, order.total_amount, order.currency, "SUCCESS")
        )
    return charges
