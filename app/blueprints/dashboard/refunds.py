"""Refunds in the dashboard: the list of one mode and its CSV, and refunding a payment
(amount and reason, a confirmation, then the PSP)."""

from __future__ import annotations

from flask import (
    Response,
    abort,
    flash,
    render_template,
    request,
    stream_with_context,
)
from flask_login import login_required

from app.blueprints.dashboard import bp
from app.blueprints.dashboard.actions import Done, decline, form_page, perform
from app.blueprints.dashboard.forms import RefundFilterForm, RefundForm, mode_name
from app.blueprints.dashboard.shared import (
    filter_chips,
    merchant_filter_choices,
    payment_to_act_on,
    payment_url,
    query_args,
    scope_merchant_id,
    view_livemode,
    viewer_zone,
)
from app.common.money import format_money
from app.models import PaymentStatus, Refund, RefundStatus, StatusSource, utcnow
from app.refunds.service import create_refund, remaining_amount
from app.reporting import refunds as refund_list
from app.reporting.transactions import BadCursor, Page


@bp.route("/refunds")
@login_required
def refunds():
    """Every refund of the mode in view, newest first, filtered, in keyset pages."""
    form = RefundFilterForm(formdata=request.args)
    valid = form.validate()
    result = Page(rows=[], older=None, newer=None)  # never an unfiltered list for a filtered one
    if valid:
        rf = form.to_filter(scope_merchant_id(), view_livemode(), viewer_zone())
        try:
            result = refund_list.page(
                rf, after=request.args.get("after"), before=request.args.get("before")
            )
        except BadCursor as exc:
            flash(str(exc), "warning")
            result = refund_list.page(rf)
    page = render_template(
        "dashboard/refunds.html",
        form=form,
        page=result,
        query_args=query_args("after", "before"),
        chips=filter_chips(form, "dashboard.refunds"),
        merchants=merchant_filter_choices(),
    )
    return page, 200 if valid else 400


@bp.route("/refunds/export.csv")
@login_required
def export_refunds():
    """The filtered refunds of the mode in view as CSV, streamed row batch by row batch."""
    form = RefundFilterForm(formdata=request.args)
    if not form.validate():
        abort(400, "The filters are not valid; fix them on the refunds page first.")
    livemode = view_livemode()
    name = f"refunds-{mode_name(livemode)}-{utcnow().strftime('%Y%m%dT%H%M%SZ')}.csv"
    rows = refund_list.export_csv(form.to_filter(scope_merchant_id(), livemode, viewer_zone()))
    return Response(
        stream_with_context(rows),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


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
