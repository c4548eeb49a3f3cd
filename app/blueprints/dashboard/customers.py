"""Customers: the list of a merchant's customers (emails its payments carry) and one customer's
page: payments, totals per currency, refunds and disputes; one mode at a time, as every page.

A customer belongs to one merchant: an operator picks the merchant first (the links from
payments carry it)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import login_required

from app.blueprints.dashboard import bp
from app.blueprints.dashboard.forms import CustomerSearchForm
from app.blueprints.dashboard.shared import (
    filter_chips,
    is_operator,
    pick_merchant,
    query_args,
    scope_merchant_id,
    view_livemode,
)
from app.models.payment import normalize_email
from app.reporting import customers as customer_reads
from app.reporting.transactions import BadCursor

ONE_MERCHANT = "Customers are a merchant's own."
# An email is at most 254 characters (RFC 5321); the column holds no longer one.
MAX_EMAIL = 254


@bp.route("/customers")
@login_required
def customers():
    """The merchant's customers in email order, searched by the beginning of an email."""
    merchant_id = scope_merchant_id()
    if merchant_id is None:
        return pick_merchant("dashboard.customers", "Customers", ONE_MERCHANT)
    form = CustomerSearchForm(formdata=request.args)
    valid = form.validate()
    result = customer_reads.CustomerPage([], None)
    if valid:
        result = customer_reads.customers_page(
            merchant_id,
            view_livemode(),
            prefix=form.q.data or None,
            after=(request.args.get("after") or "")[:MAX_EMAIL] or None,
        )
    page = render_template(
        "dashboard/customers.html",
        form=form,
        page=result,
        query_args=query_args("after"),
        chips=filter_chips(form, "dashboard.customers"),
        merchant_id=merchant_id,
    )
    return page, 200 if valid else 400


@bp.route("/customers/<path:email>")
@login_required
def customer(email: str):
    """One customer of the merchant in the mode in view: totals, payments, refunds, disputes."""
    merchant_id = scope_merchant_id()
    if merchant_id is None:
        abort(404, "Open a customer from one merchant's payments or customers list.")
    if len(email) > MAX_EMAIL:
        abort(404, "No customer has this email.")
    canonical = normalize_email(email) or ""
    if canonical != email:  # one address, one page: any case leads to the stored one
        return redirect(_customer_url(canonical, merchant_id, **request.args.to_dict()))
    livemode = view_livemode()
    totals = customer_reads.totals(merchant_id, livemode, email)
    if not totals:
        abort(404, "No payment of this mode carries this email.")
    try:
        payments = customer_reads.payments_page(
            merchant_id,
            livemode,
            email,
            after=request.args.get("after"),
            before=request.args.get("before"),
        )
    except BadCursor as exc:
        flash(str(exc), "warning")
        payments = customer_reads.payments_page(merchant_id, livemode, email)
    return render_template(
        "dashboard/customer.html",
        email=email,
        merchant_id=merchant_id,
        totals=totals,
        payments=payments,
        refunds=customer_reads.refunds(merchant_id, livemode, email),
        disputes=customer_reads.disputes(merchant_id, livemode, email),
        page_url=lambda **cursor: _customer_url(email, merchant_id, **cursor),
    )


def _customer_url(email: str, merchant_id: int, **args) -> str:
    args.pop("email", None)
    if is_operator():
        args["merchant_id"] = merchant_id
    return url_for("dashboard.customer", email=email, **args)
