"""The shop's business rules: accounts, orders, and paying for them through PayBridge.

Services flush; the caller (a view, the CLI) commits. Nothing here reads the request or session.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.errors import PayBridgeError
from app.extensions import db
from app.models import Merchant, Payment, utcnow
from app.payments.status import PaymentStatus, StatusSource
from app.shop.cart import PricedCart
from app.shop.models import Order, OrderItem, OrderStatus, ShopCustomer, ShopSetting

log = logging.getLogger(__name__)

MERCHANT_SETTING = "merchant_id"
DEMO_MERCHANT_NAME = "PayBridge Demo Shop"
# How long a checkout waits for a parallel request (a double click) that is registering the
# same payment, before telling the shopper to look at the order page.
IN_PROGRESS_WAIT_SECONDS = 8.0


class ShopError(Exception):
    """Something the shopper must be told, in words; `retryable` offers "try again"."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


# --- which PayBridge merchant the shop sells as ------------------------------------------------


def get_setting(key: str) -> str | None:
    row = db.session.get(ShopSetting, key)
    return row.value if row else None


def set_setting(key: str, value: str) -> None:
    row = db.session.get(ShopSetting, key)
    if row is None:
        db.session.add(ShopSetting(key=key, value=value))
    else:
        row.value = value
    db.session.flush()


def demo_merchant() -> Merchant | None:
    """The merchant the shop sells as (recorded by `flask seed-demo`)."""
    value = get_setting(MERCHANT_SETTING)
    if value is None or not value.isdigit():
        return None
    return db.session.get(Merchant, int(value))


def require_merchant() -> Merchant:
    merchant = demo_merchant()
    if merchant is None:
        raise ShopError("The shop is not set up to take payments yet: run `flask seed-demo` first.")
    return merchant


def signing_secrets() -> list[str]:
    """The secrets the shop accepts notification signatures from (both, during a rotation)."""
    configured = current_app.config.get("SHOP_SIGNING_SECRET")
    if configured:
        return [configured]
    merchant = demo_merchant()
    return merchant.signing_secrets() if merchant else []


# --- accounts -----------------------------------------------------------------------------------


def normalise_email(email: str) -> str:
    return email.strip().lower()


def register_customer(email: str, name: str, password: str) -> ShopCustomer:
    """Create a shopper account; ShopError when the email is taken."""
    email = normalise_email(email)
    if find_customer(email) is not None:
        raise ShopError("There is already an account with this email address. Log in instead.")
    customer = ShopCustomer(email=email, name=name.strip())
    customer.set_password(password)
    db.session.add(customer)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise ShopError(
            "There is already an account with this email address. Log in instead."
        ) from None
    return customer


def find_customer(email: str) -> ShopCustomer | None:
    return db.session.execute(
        select(ShopCustomer).where(ShopCustomer.email == normalise_email(email))
    ).scalar_one_or_none()


def authenticate(email: str, password: str) -> ShopCustomer | None:
    customer = find_customer(email)
    if customer is None or not customer.check_password(password):
        return None
    customer.last_login_at = utcnow()
    return customer


# --- orders -------------------------------------------------------------------------------------


def find_order_by_token(customer_id: int, token: str) -> Order | None:
    return db.session.execute(
        select(Order).where(Order.customer_id == customer_id, Order.checkout_token == token)
    ).scalar_one_or_none()


def customer_order(customer_id: int, order_id: int) -> Order | None:
    """The order if it belongs to this shopper; someone else's order is as good as missing."""
    order = db.session.get(Order, order_id)
    if order is None or order.customer_id != customer_id:
        return None
    return order


def customer_orders(customer_id: int) -> list[Order]:
    return list(
        db.session.execute(
            select(Order)
            .where(Order.customer_id == customer_id)
            .order_by(Order.created_at.desc(), Order.id.desc())
        ).scalars()
    )


def place_order(customer: ShopCustomer, cart: PricedCart, token: str) -> tuple[Order, bool]:
    """Turn the cart into an order, once per checkout token: (order, created).

    The same token again (a double click, a refreshed POST) returns the first order, even when
    the two requests race: the unique (customer, token) constraint decides.
    """
    existing = find_order_by_token(customer.id, token)
    if existing is not None:
        return existing, False
    if token != cart.token:
        raise ShopError("Your cart changed since you opened the checkout. Please check it again.")
    if cart.is_empty:
        raise ShopError("Your cart is empty.")
    if cart.currency is None:
        raise ShopError("Items priced in different currencies cannot be paid in one order.")
    order = Order(
        customer_id=customer.id,
        checkout_token=token,
        status=OrderStatus.PENDING_PAYMENT,
        total_amount=cart.total,
        currency=cart.currency,
        email=customer.email,
        items=[
            OrderItem(
                product_id=line.product.id,
                name=line.product.name,
                unit_price=line.product.price,
                quantity=line.quantity,
            )
            for line in cart.lines
        ],
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


# --- paying through PayBridge -------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentView:
    """What the shop shows about an order's payment, read from PayBridge."""

    public_id: str
    status: str
    checkout_url: str | None
    failure_message: str | None

    @property
    def is_final(self) -> bool:
        return PaymentStatus(self.status).is_final


def order_payment(order: Order) -> Payment | None:
    """The PayBridge payment of this order (in-process read by merchant reference)."""
    merchant_id = get_setting(MERCHANT_SETTING)
    if merchant_id is None:
        return None
    return db.session.execute(
        select(Payment).where(
            Payment.merchant_id == int(merchant_id),
            Payment.merchant_reference == order.reference,
        )
    ).scalar_one_or_none()


def payment_view(order: Order) -> PaymentView | None:
    payment = order_payment(order)
    if payment is None:
        return None
    return PaymentView(
        public_id=payment.public_id,
        status=payment.status,
        checkout_url=payment.checkout_url if payment.status == PaymentStatus.INITIATED else None,
        failure_message=payment.failure_message,
    )


def payment_views(orders: list[Order]) -> dict[int, PaymentView]:
    """Payment status for many orders in one query (the "My orders" page)."""
    merchant_id = get_setting(MERCHANT_SETTING)
    if merchant_id is None or not orders:
        return {}
    by_reference = {order.reference: order.id for order in orders}
    rows = db.session.execute(
        select(Payment).where(
            Payment.merchant_id == int(merchant_id),
            Payment.merchant_reference.in_(list(by_reference)),
        )
    ).scalars()
    return {
        by_reference[p.merchant_reference]: PaymentView(
            p.public_id,
            p.status,
            p.checkout_url if p.status == PaymentStatus.INITIATED else None,
            p.failure_message,
        )
        for p in rows
    }


def payment_params(order: Order, base_url: str) -> dict:
    """The payment as the API would receive it: deterministic for a given order."""
    if order.plan:
        from app.shop.plans import plan_payment_params

        return plan_payment_params(order, base_url)
    count = sum(item.quantity for item in order.items)
    return {
        "merchant_reference": order.reference,
        "amount": order.total_amount,
        "currency": order.currency,
        "payment_type": "SALE",
        "description": f"{DEMO_MERCHANT_NAME} order #{order.id} ({count} "
        f"print{'s' if count != 1 else ''})",
        "customer_email": order.email,
        "success_url": f"{base_url}/orders/{order.id}/success",
        "cancel_url": f"{base_url}/orders/{order.id}/cancelled",
        "metadata": {"order_id": str(order.id), "source": "demo-shop"},
    }


def idempotency_key(order: Order) -> str:
    return f"shop-{order.reference}"


def start_payment(order: Order) -> Payment:
    """Make sure the order has a payment registered at the PSP and return it.

    Reuses the order's payment whenever one exists: an INITIATED one as it is, a CREATED one
    (the PSP was down last time) registered again with its own PSP idempotency key. Raises
    ShopError with words for the shopper; the order stays payable unless the payment is final.
    """
    from app.payments import service

    merchant = require_merchant()
    if order.is_final:
        raise ShopError(_final_order_message(order))
    payment = order_payment(order)
    # CREATED may mean a parallel click is registering it right now: only the idempotent
    # create (same key) knows, and waits for it or takes over; a second registration beside
    # it would meet the PSP's in-flight answer and tell the shopper the PSP is down.
    if payment is None or payment.status_enum == PaymentStatus.CREATED:
        base_url = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
        try:
            payment = service.create_payment(
                merchant.id, payment_params(order, base_url), idempotency_key=idempotency_key(order)
            )
        except PayBridgeError as error:
            payment = _recover_existing(order, error)
    _remember(order, payment)
    status = payment.status_enum
    if status == PaymentStatus.CREATED:
        try:
            payment = service.register_with_psp(payment.id, source=StatusSource.API)
        except PayBridgeError as error:
            raise _shop_error(error) from error
        status = payment.status_enum
    if status == PaymentStatus.INITIATED and payment.checkout_url:
        if payment.psp_expires_at and payment.psp_expires_at <= utcnow():
            # PayBridge's reconciliation will fail it soon; the page would only say "expired".
            raise ShopError(
                "The payment page for this order has expired. Cancel the order, then put its "
                "prints back in your cart to order them again."
            )
        return payment
    if status == PaymentStatus.PENDING:
        raise ShopError(
            "Your payment is being confirmed by the bank; there is nothing more to pay."
        )
    if status == PaymentStatus.SUCCESS:
        raise ShopError("This order is already paid.")
    raise ShopError(
        "This order's payment has failed and cannot be paid again. "
        "Put its items back in your cart to order them again."
    )


def _remember(order: Order, payment: Payment) -> None:
    if order.payment_id != payment.public_id:
        order.payment_id = payment.public_id
        db.session.flush()


def _recover_existing(order: Order, error: PayBridgeError) -> Payment:
    """The payment a failed create_payment call points to, or a ShopError for the shopper."""
    if error.code in ("DUPLICATE_MERCHANT_REFERENCE", "IDEMPOTENCY_KEY_REUSED"):
        # Someone (a parallel click, an earlier attempt) registered it already.
        db.session.rollback()
        payment = order_payment(order)
        if payment is not None:
            return payment
    if error.code == "REQUEST_IN_PROGRESS":
        payment = _wait_for_parallel_registration(order)
        if payment is not None:
            return payment
        raise ShopError(
            "Your payment is still being set up. Please wait a moment and try again.",
            retryable=True,
        ) from error
    db.session.rollback()
    payment = order_payment(order)
    if payment is not None and error.code not in ("PSP_UNAVAILABLE", "PSP_ERROR"):
        return payment
    raise _shop_error(error) from error


def _wait_for_parallel_registration(order: Order) -> Payment | None:
    deadline = time.monotonic() + IN_PROGRESS_WAIT_SECONDS
    while time.monotonic() < deadline:
        db.session.rollback()  # a new transaction sees what the other request committed
        payment = order_payment(order)
        if payment is not None and payment.status != PaymentStatus.CREATED:
            return payment
        time.sleep(0.25)
    return None


def _shop_error(error: PayBridgeError) -> ShopError:
    log.warning("payment for an order could not be started: %s", error.code)
    if error.code in ("PSP_UNAVAILABLE", "PSP_ERROR", "SERVICE_UNAVAILABLE", "RATE_LIMITED"):
        return ShopError(
            "We could not reach the payment provider just now. Your order is saved and "
            "nothing was charged: please try paying again in a moment.",
            retryable=True,
        )
    if error.code == "PSP_REJECTED":
        return ShopError("The payment provider did not accept this payment. Nothing was charged.")
    return ShopError(
        "Something went wrong while starting the payment. Your order is saved: please try "
        "again in a moment.",
        retryable=error.spec.retryable,
    )


def _final_order_message(order: Order) -> str:
    if order.status == OrderStatus.PAID:
        return "This order is already paid."
    return "This order's payment failed. Put its items back in your cart to order them again."


def cancel_order(order: Order) -> Payment | None:
    """Stop a not-yet-paid order: expire its payment at PayBridge (it becomes FAILED)."""
    from app.payments import service

    if order.is_final:
        raise ShopError(_final_order_message(order))
    payment = order_payment(order)
    if payment is None:
        return None
    if payment.is_final:
        return payment
    try:
        return service.expire_payment(
            payment.id, source=StatusSource.API, reason="shopper cancelled the order"
        )
    except PayBridgeError as error:
        if error.code == "PAYMENT_ALREADY_FINAL":
            db.session.rollback()
            return order_payment(order)
        if error.code == "ILLEGAL_TRANSITION":
            raise ShopError(
                "You already completed the checkout and the payment is being processed, "
                "so the order can no longer be cancelled."
            ) from error
        raise _shop_error(error) from error


def reorder_items(order: Order) -> list[tuple[int, int]]:
    """(product_id, quantity) pairs to put a past order's items back in the cart."""
    return [(item.product_id, item.quantity) for item in order.items if item.product_id]
