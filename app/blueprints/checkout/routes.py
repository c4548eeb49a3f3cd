"""Where Stripe sends the shopper back: check with the PSP, then on to the merchant's own pages."""

from __future__ import annotations

import logging

from flask import redirect, render_template, request, url_for

from app.blueprints.checkout import bp
from app.common.money import format_money
from app.errors import PayBridgeError
from app.models import Payment, PaymentStatus
from app.payments.returns import (
    check_on_return,
    find_payment,
    record_shopper_left,
    with_payment_id,
)

log = logging.getLogger(__name__)


def _payment_or_404(payment_id: str) -> Payment:
    payment = find_payment(payment_id)
    if payment is None:
        raise PayBridgeError("PAYMENT_NOT_FOUND")
    return payment


def _status_page(payment: Payment) -> str:
    """Where the shopper goes when the merchant's own page cannot be reached: PayBridge's
    status page, which says how the payment stands (no link back to the merchant)."""
    return url_for("checkout.checkout_status", payment_id=payment.public_id)


@bp.get("/checkout/return/<payment_id>")
def checkout_return(payment_id: str):
    """The shopper finished checkout: learn the outcome from the PSP, then the merchant's page."""
    payment = _payment_or_404(payment_id)
    target = with_payment_id(payment.success_url, payment.public_id)
    outcome = check_on_return(payment, request.args.get("session_id"))
    log.info("shopper returned for %s (check: %s)", payment_id, outcome or "not asked")
    return redirect(target or _status_page(payment), 303)


@bp.get("/checkout/cancel/<payment_id>")
def checkout_cancel(payment_id: str):
    """The shopper left checkout: the payment stays open until its session expires (the shopper
    may come back); closed unpaid, it reads as canceled by the shopper."""
    payment = _payment_or_404(payment_id)
    target = with_payment_id(payment.cancel_url, payment.public_id)
    recorded = record_shopper_left(payment)
    log.info(
        "shopper left checkout for %s (%s, recorded: %s)", payment_id, payment.status, recorded
    )
    return redirect(target or _status_page(payment), 303)


@bp.get("/checkout/status/<payment_id>")
def checkout_status(payment_id: str):
    """The payment's current status, reloading every few seconds until it is final."""
    payment = _payment_or_404(payment_id)
    refresh = not payment.is_final and request.args.get("refresh") != "0"
    response = render_template(
        "checkout/status.html",
        payment=payment,
        amount=format_money(payment.amount, payment.currency, grouped=True),
        refresh=refresh,
        merchant_url=with_payment_id(
            payment.success_url if payment.status == PaymentStatus.SUCCESS else payment.cancel_url,
            payment.public_id,
        ),
    )
    return response, 200, {"Cache-Control": "no-store"}
