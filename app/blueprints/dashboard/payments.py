"""Payments: the transactions table, its CSV export, one payment's page, and expiring one."""

from __future__ import annotations

from flask import Response, abort, current_app, flash, render_template, request, stream_with_context
from flask_login import login_required

from app.blueprints.dashboard import bp
from app.blueprints.dashboard.actions import Done, decline, form_page, perform
from app.blueprints.dashboard.forms import (
    ConfirmForm,
    ExpireForm,
    TransactionFilterForm,
    mode_name,
)
from app.blueprints.dashboard.shared import (
    filter_chips,
    merchant_filter_choices,
    payment_or_404,
    payment_to_act_on,
    payment_url,
    query_args,
    scope_merchant_id,
    view_livemode,
    viewer_zone,
)
from app.models import Payment, StatusSource, utcnow
from app.payments.service import expire_payment
from app.refunds.service import remaining_amount
from app.reporting import queries, transactions
from app.reporting.disputes import disputes_of_payment
from app.reporting.queries import refund_timeline


@bp.route("/payments")
@login_required
def payments():
    """The transactions table: filters, search, keyset pages."""
    form = TransactionFilterForm(formdata=request.args)
    valid = form.validate()
    if valid:
        result = _page(form.to_filter(scope_merchant_id(), view_livemode(), viewer_zone()))
    else:
        # Never show an unfiltered list that could be read as the filtered one.
        result = transactions.Page(rows=[], older=None, newer=None)
    page = render_template(
        "dashboard/payments.html",
        form=form,
        page=result,
        query_args=query_args("after", "before"),
        chips=filter_chips(form, "dashboard.payments"),
        merchants=merchant_filter_choices(),
    )
    return page, 200 if valid else 400


def _page(txf: transactions.TransactionFilter) -> transactions.Page:
    """The page the cursor asks for; the first one, with a warning, when it is not ours."""
    try:
        return transactions.page(
            txf, after=request.args.get("after"), before=request.args.get("before")
        )
    except transactions.BadCursor as exc:
        flash(str(exc), "warning")
        return transactions.page(txf)


@bp.route("/payments/export.csv")
@login_required
def export_payments():
    """The filtered set of the mode in view as CSV, streamed row batch by row batch."""
    form = TransactionFilterForm(formdata=request.args)
    if not form.validate():
        abort(400, "The filters are not valid; fix them on the transactions page first.")
    livemode = view_livemode()
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    # The mode in the file's name too: a test export is never mistaken for the books.
    name = f"payments-{mode_name(livemode)}-{stamp}.csv"
    return Response(
        stream_with_context(
            transactions.export_csv(form.to_filter(scope_merchant_id(), livemode, viewer_zone()))
        ),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.route("/payments/<public_id>")
@login_required
def payment_detail(public_id: str):
    """One payment's whole story, in whichever mode it is: a link to a live payment opened while
    viewing test data (or the reverse) says so and offers the switch."""
    payment = payment_or_404(public_id)
    story = queries.payment_story(payment)
    return render_template(
        "dashboard/payment.html",
        story=story,
        other_mode=payment.livemode != view_livemode(),
        psp_links=_psp_links(payment),
        confirm=ConfirmForm(),
        refund_events=refund_timeline(story.refunds),
        refundable=remaining_amount(payment),
        disputes=disputes_of_payment(payment.id),
    )


def _psp_links(payment: Payment) -> list[tuple[str, str]]:
    """Where to see this payment at the PSP: Stripe's dashboard, or the emulator's page."""
    base = (current_app.config.get("STRIPE_API_BASE") or "").rstrip("/")
    links = []
    if base.startswith("https://api.stripe.com"):
        stripe = "https://dashboard.stripe.com/" + ("" if payment.livemode else "test/")
        if payment.psp_payment_intent_id:
            url = f"{stripe}payments/{payment.psp_payment_intent_id}"
            links.append(("Payment in the Stripe dashboard", url))
        if payment.psp_subscription_id:
            url = f"{stripe}subscriptions/{payment.psp_subscription_id}"
            links.append(("Subscription in the Stripe dashboard", url))
    elif base and payment.psp_session_id:
        url = f"{base}/c/pay/{payment.psp_session_id}"
        links.append(("Checkout session on the Stripe emulator", url))
    return links


@bp.route("/payments/<public_id>/expire", methods=["GET", "POST"])
@login_required
def expire(public_id: str):
    """Confirm, then expire a payment that is not final (PSP session expired, FAILED)."""
    payment = payment_to_act_on(public_id)
    if payment.is_final:
        message = f"This payment is already {payment.status}; nothing to expire."
        return decline(message, payment_url(public_id))
    form = ExpireForm()
    if not form.validate_on_submit():
        return form_page("dashboard/confirm_expire.html", payment=payment, form=form)
    payment_id, reason = payment.id, form.reason.data.strip()
    return perform(
        "payment_expire",
        merchant_id=payment.merchant_id,
        target=("payment", public_id),
        act=lambda: _expire(payment_id, public_id, reason),
        failure="The payment was not expired",
        back=payment_url(public_id),
        detail={"reason": reason},
    )


def _expire(payment_id: int, public_id: str, reason: str) -> Done:
    expired = expire_payment(payment_id, source=StatusSource.DASHBOARD, reason=reason)
    return Done(f"Payment {public_id} is now {expired.status}.", {"status": expired.status})
