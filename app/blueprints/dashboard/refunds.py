"""Refunding a payment from the dashboard: amount and reason, a confirmation, then the PSP."""

from __future__ import annotations

from flask import render_template, request
from flask_login import login_required

from app.blueprints.dashboard import bp
from app.blueprints.dashboard.actions import Done, decline, form_page, perform
from app.blueprints.dashboard.forms import RefundForm
from app.blueprints.dashboard.shared import payment_to_act_on, payment_url
from app.common.money import format_money
from app.models import PaymentStatus, Refund, RefundStatus, StatusSource
from app.refunds.service import create_refund, remaining_amount


@bp.route("/payments/<public_id>/refund", methods=["GET", "POST"])
@login_required
def refund(public_id: str):
    """Refund all or part of a SUCCESS payment: amount and reason, confirm, then the PSP."""
    payment = payment_to_act_on(public_id)
    remaining = remaining_amount(payment)
    if remaining <= 0:  # remaining_amount is 0 for a payment that is not SUCCESS
        paid = payment.status == PaymentStatus.SUCCESS
        why = "nothing remains to refund" if paid else "it is not paid"
        return decline(f"This payment cannot be refunded: {why}.", payment_url(public_id))
    form = RefundForm(currency=payment.currency, remaining=remaining)
    if request.method == "GET":
        form.start()
    page = {"payment": payment, "form": form, "remaining": remaining}
    if not form.validate_on_submit():
        return form_page("dashboard/refund.html", step="ask", **page)
    amount, reason, token = form.amount_minor, form.reason.data, form.token.data
    if form.confirmed.data != "yes":
        return render_template("dashboard/refund.html", step="confirm", amount=amount, **page)
    return perform(
        "payment_refund",
        merchant_id=payment.merchant_id,
        target=("payment", public_id),
        act=lambda: _refund(payment.merchant_id, public_id, amount, reason, token),
        failure="The refund was not made",
        back=payment_url(public_id),
        detail={"amount": amount, "currency": payment.currency, "reason": reason},
    )


def _refund(merchant_id: int, public_id: str, amount: int, reason: str, token: str) -> Done:
    made = create_refund(
        merchant_id,
        public_id,
        {"amount": amount, "reason": reason},
        # Made when the form was first shown: submitting the confirmation twice makes one refund.
        idempotency_key=f"dashboard-refund-{token}",
        source=StatusSource.DASHBOARD,
    )
    message, category = _said(made)
    return Done(message, {"refund": made.public_id, "status": made.status}, category)


def _said(made: Refund) -> tuple[str, str]:
    """What the person is told about the refund just made, and how (flash category)."""
    money = format_money(made.amount, made.currency)
    if made.status == RefundStatus.SUCCEEDED:
        return f"Refund {made.public_id} of {money} succeeded.", "success"
    if made.psp_refund_id is None:
        return (
            f"Refund {made.public_id} of {money} is reserved but the PSP could not be "
            "reached; reconciliation submits it (the same refund, never a second one).",
            "warning",
        )
    if made.status == RefundStatus.PENDING:
        return (
            f"Refund {made.public_id} of {money} is pending at the PSP; "
            "this page shows the outcome once it is confirmed.",
            "success",
        )
    return f"Refund {made.public_id} of {money} failed: {made.failure_reason}.", "error"
