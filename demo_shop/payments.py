"""The order's payment at PayBridge: start it, stop it, and take in what PayBridge says of it.

The rules a client app of PayBridge lives by, all in this module:

- One order, one payment: the payment is created with an Idempotency-Key derived from the order,
  so a double click, a retry after a timeout or "pay again" never makes a second one.
- The order learns its payment's state from what PayBridge says (an API answer, or a signed
  notification, see notifications.py), never from the shopper's browser, and keeps only news
  newer than what it has (`status_version`).
- Nothing is lost when PayBridge or the PSP is down: the order is kept, the shopper is told in
  words, and paying again continues the same payment.

Services flush; the caller (a view, a command) commits. No write is pending while a call to
PayBridge is on its way: SQLite has one writer, and a notification arriving meanwhile must not
wait for a page.
"""

from __future__ import annotations

import logging
from datetime import datetime

from flask import current_app
from sqlalchemy import select, update

from demo_shop.catalogue import PLANS
from demo_shop.extensions import db
from demo_shop.models import Dispute, Order, OrderStatus, Refund, RenewalCharge, utcnow
from demo_shop.orders import ShopError
from demo_shop.paybridge import PayBridgeClient, PayBridgeError

log = logging.getLogger(__name__)

# What a final payment means for its order.
ORDER_STATUS_FOR_PAYMENT = {"SUCCESS": OrderStatus.PAID, "FAILED": OrderStatus.FAILED}
FINAL_PAYMENT_STATUSES = frozenset(ORDER_STATUS_FOR_PAYMENT)


def paybridge_client() -> PayBridgeClient:
    """The app's API client (see create_app); ShopError while the shop has no API key."""
    client = current_app.extensions.get("paybridge")
    if client is None:
        raise ShopError(
            "The shop is not connected to PayBridge yet, so it cannot take payments "
            "(run `python -m demo_shop init` with the merchant's API key)."
        )
    return client


# --- paying ------------------------------------------------------------------------------------


def payment_request(order: Order) -> dict:
    """The order as PayBridge's create-payment body; the same order always gives the same body,
    which is what lets its Idempotency-Key be reused safely."""
    base_url = current_app.config["PUBLIC_URL"].rstrip("/")
    body = {
        "merchant_reference": order.reference,
        "amount": order.total_amount,
        "currency": order.currency,
        "payment_type": "SALE",
        "description": f"PayBridge Demo Shop order #{order.id}",
        "customer_email": order.email,
        "success_url": f"{base_url}/orders/{order.id}/success",
        "cancel_url": f"{base_url}/orders/{order.id}/cancelled",
        "metadata": {"order_id": str(order.id)},
    }
    if order.plan:
        plan = PLANS.get(order.plan)
        if plan is None:
            raise ShopError("This subscription plan is no longer sold.")
        body.update(
            payment_type="RECC",
            interval=plan.interval,
            interval_count=plan.interval_count,
            description=f"PayBridge Demo Shop: {plan.name} (every {plan.every})",
        )
    return body


def idempotency_key(order: Order) -> str:
    return f"{order.reference}-create"


def start_payment(order: Order) -> str:
    """The checkout URL to send the shopper to, creating the order's payment if it has none.

    Paying again reuses the payment: an open checkout as it is; one PayBridge could not register
    with the PSP yet (CREATED) by the same create call, which finishes it.
    """
    if order.is_final:
        raise ShopError(_final_order_message(order))
    client = paybridge_client()
    try:
        payment = client.get_payment(order.payment_id) if order.payment_id else None
        if payment is None or payment["status"] == "CREATED":
            payment = _create_payment(client, order)
    except PayBridgeError as error:
        raise _for_shopper(error) from error
    record_payment(order, payment)
    return _checkout_url(payment)


def _create_payment(client: PayBridgeClient, order: Order) -> dict:
    try:
        return client.create_payment(payment_request(order), idempotency_key=idempotency_key(order))
    except PayBridgeError as error:
        existing_id = error.details.get("payment_id")
        if error.code == "DUPLICATE_MERCHANT_REFERENCE" and existing_id:
            # Created earlier under another Idempotency-Key (by the merchant's other tools, say).
            return _adopt(client, order, existing_id)
        if existing_id and order.payment_id is None:
            # The PSP was unreachable: PayBridge kept the payment (CREATED) and names it, and
            # the next attempt with the same key finishes it.
            order.payment_id = existing_id
            db.session.flush()
        raise


def _adopt(client: PayBridgeClient, order: Order, payment_id: str) -> dict:
    payment = client.get_payment(payment_id)
    ours = (payment["amount"], payment["currency"], payment["metadata"].get("order_id")) == (
        order.total_amount,
        order.currency,
        str(order.id),
    )
    if not ours:
        log.error("%s is already the reference of %s, another order's", order.reference, payment_id)
        raise ShopError("This order's payment could not be started. Please contact us.")
    return payment


def _checkout_url(payment: dict) -> str:
    status = payment["status"]
    if status == "INITIATED":
        expires_at = parse_time(payment["expires_at"])
        if expires_at is not None and expires_at <= utcnow():
            raise ShopError(
                "The payment page for this order has expired. Cancel the order, then put its "
                "prints back in your cart to order them again."
            )
        return payment["checkout_url"]
    if status == "CREATED":
        raise ShopError(
            "Your payment is still being set up. Please wait a moment and try again.",
            retryable=True,
        )
    if status == "PENDING":
        raise ShopError(
            "Your payment is being confirmed by the bank; there is nothing more to pay."
        )
    if status == "SUCCESS":
        raise ShopError("This order is already paid.")
    raise ShopError(
        "This order's payment has failed and cannot be paid again. "
        "Put its items back in your cart to order them again."
    )


def cancel_order(order: Order) -> None:
    """Give up on an unpaid order: PayBridge expires its payment, which becomes FAILED."""
    if order.is_final:
        raise ShopError(_final_order_message(order))
    if order.payment_id is None:
        order.status = OrderStatus.FAILED
        order.failure_message = "You cancelled the order before paying."
        db.session.flush()
        return
    client = paybridge_client()
    try:
        payment = client.expire_payment(order.payment_id)
    except PayBridgeError as error:
        if error.code == "PAYMENT_ALREADY_FINAL":
            # Paid (or failed) a moment ago: show what it became.
            refresh_payment(order)
            raise ShopError(_final_payment_message(order)) from error
        if error.code == "ILLEGAL_TRANSITION":
            raise ShopError(
                "You already completed the checkout and the payment is being processed, "
                "so the order can no longer be cancelled."
            ) from error
        raise _for_shopper(error) from error
    record_payment(order, payment)


def refresh_payment(order: Order) -> bool:
    """Ask PayBridge about the order's payment while it can still change; False if it could not
    answer (the page then shows what the shop last knew)."""
    needs_news = order.payment_status not in FINAL_PAYMENT_STATUSES or (
        order.plan and not order.subscription_id
    )
    if order.payment_id is None or not needs_news:
        return True
    try:
        payment = paybridge_client().get_payment(order.payment_id)
    except (PayBridgeError, ShopError) as error:
        log.warning("could not refresh %s: %s", order.payment_id, error)
        return False
    record_payment(order, payment)
    return True


# --- what PayBridge tells the shop --------------------------------------------------------------


def record_payment(order: Order, payment: dict) -> bool:
    """Take a state of the order's payment (an API answer or a notification's data) if it is
    newer than the one the order has; whether it was. A final payment settles the order."""
    if payment.get("subscription_id") and not order.subscription_id:
        order.subscription_id = payment["subscription_id"]  # a link that never changes
    version = payment["status_version"]
    # Compare-and-set in the database: of two requests carrying news at once (the notification
    # and the shopper's return page), only a newer one wins, and an older one changes nothing.
    # The UPDATE also holds the row until the caller commits.
    claimed = db.session.execute(
        update(Order)
        .where(Order.id == order.id, Order.payment_status_version < version)
        .values(payment_status_version=version)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(order)
    if not claimed:
        return False
    order.payment_id = payment["id"]
    order.payment_status = payment["status"]
    order.checkout_url = payment["checkout_url"]
    order.checkout_expires_at = parse_time(payment["expires_at"])
    order.failure_message = payment["failure_message"]
    settled = ORDER_STATUS_FOR_PAYMENT.get(payment["status"])
    if settled and order.status == OrderStatus.PENDING_PAYMENT:
        order.status = settled
        if settled == OrderStatus.PAID:
            order.paid_at = utcnow()
    db.session.flush()
    return True


def record_renewal(order: Order, payment: dict) -> bool:
    """A later charge of the order's subscription (its own RECC payment), newest news only.

    PayBridge sends one payment's notifications one at a time and in order, and duplicates are
    dropped before this runs, so a plain read-then-write is safe here.
    """
    charge = db.session.scalar(
        select(RenewalCharge).where(RenewalCharge.payment_id == payment["id"])
    )
    if charge is None:
        charge = RenewalCharge(
            order_id=order.id,
            payment_id=payment["id"],
            charged_at=parse_time(payment["created_at"]),
            status_version=0,
        )
        db.session.add(charge)
    if payment["status_version"] <= charge.status_version:
        return False
    charge.amount = payment["amount"]
    charge.currency = payment["currency"]
    charge.status = payment["status"]
    charge.status_version = payment["status_version"]
    charge.failure_message = payment["failure_message"]
    db.session.flush()
    return True


def record_refund(order: Order, refund: dict) -> None:
    """A refund of one of the order's payments, as PayBridge now reports it (in order per payment,
    so the latest notification of a refund is its state)."""
    row = db.session.scalar(select(Refund).where(Refund.refund_id == refund["id"]))
    if row is None:
        row = Refund(refund_id=refund["id"], order_id=order.id, payment_id=refund["payment_id"])
        db.session.add(row)
    row.amount = refund["amount"]
    row.currency = refund["currency"]
    row.status = refund["status"]
    row.failure_reason = refund["failure_reason"]
    db.session.flush()


def record_dispute(order: Order, dispute: dict) -> None:
    """A dispute of one of the order's payments, as PayBridge now reports it (its notifications
    come in order per payment, so the latest of a dispute is its state)."""
    row = db.session.scalar(select(Dispute).where(Dispute.dispute_id == dispute["id"]))
    if row is None:
        row = Dispute(dispute_id=dispute["id"], order_id=order.id, payment_id=dispute["payment_id"])
        db.session.add(row)
    row.amount = dispute["amount"]
    row.currency = dispute["currency"]
    row.reason = dispute.get("reason")
    row.status = dispute["status"]
    db.session.flush()


# --- words for the shopper ----------------------------------------------------------------------


def _for_shopper(error: PayBridgeError) -> ShopError:
    """A PayBridge error as the shopper should hear it."""
    log.warning("PayBridge call failed: %s", error)
    if error.code in ("UNREACHABLE", "SERVICE_UNAVAILABLE", "INTERNAL_ERROR"):
        return ShopError(
            "We could not reach our payment service just now. Your order is saved and nothing "
            "was charged: please try paying again in a moment.",
            retryable=True,
        )
    if error.retryable:  # the PSP is down or slow, or we are sending too fast
        return ShopError(
            "We could not reach the payment provider just now. Your order is saved and nothing "
            "was charged: please try paying again in a moment.",
            retryable=True,
        )
    if error.code == "PSP_REJECTED":
        return ShopError("The payment provider did not accept this payment. Nothing was charged.")
    log.error("PayBridge refused a call the shop should not have made: %s", error)
    return ShopError(
        "Something went wrong while starting the payment. Your order is saved: please try "
        "again later."
    )


def _final_order_message(order: Order) -> str:
    if order.status == OrderStatus.PAID:
        return "This order is already paid."
    return "This order's payment failed. Put its items back in your cart to order them again."


def _final_payment_message(order: Order) -> str:
    if order.payment_status == "SUCCESS":
        return "Your payment went through just before you cancelled, so the order is paid."
    return "This order's payment has already ended."


def parse_time(value: str | None) -> datetime | None:
    """PayBridge's ISO 8601 UTC timestamps ("…Z") as naive UTC, the way the store keeps them."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
