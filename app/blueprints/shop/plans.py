"""The shop's subscription plan: a page to subscribe, then the same hosted checkout as prints."""

from __future__ import annotations

import secrets

from flask import abort, flash, redirect, render_template, url_for

from app.extensions import db
from app.shop import plans
from app.shop.services import ShopError

from . import bp
from .forms import ActionForm, CheckoutForm
from .routes import _pay, current_customer, login_required, owned_order


@bp.context_processor
def plan_context() -> dict:
    return {
        "shop_plans": list(plans.PLANS.values()),
        "order_subscription": plans.order_subscription,
    }


@bp.get("/subscribe/<slug>")
@login_required
def subscribe(slug: str):
    """The plan's terms, and the button that starts its first payment."""
    plan = plans.get_plan(slug) or abort(404, "There is no such subscription plan.")
    form = CheckoutForm(token=secrets.token_urlsafe(24))
    return render_template("shop/subscribe.html", plan=plan, form=form)


@bp.post("/subscribe/<slug>")
@login_required
def start_subscription(slug: str):
    """Create the plan's order (once per form) and send the shopper to the hosted page."""
    plan = plans.get_plan(slug) or abort(404, "There is no such subscription plan.")
    form = CheckoutForm()
    if not form.validate_on_submit():
        abort(400, "The subscribe form is incomplete.")
    try:
        order, _ = plans.place_plan_order(current_customer(), plan, form.token.data)
    except ShopError as error:
        flash(error.message, "error")
        return redirect(url_for("shop.subscribe", slug=slug), 303)
    db.session.commit()
    return _pay(order)


@bp.post("/orders/<int:order_id>/subscription/cancel")
@login_required
def cancel_plan(order_id: int):
    """Stop the order's subscription at the end of the period already paid for."""
    if not ActionForm().validate_on_submit():
        abort(400, "The form is incomplete.")
    order = owned_order(order_id)
    try:
        plans.cancel_order_subscription(order)
        flash("Your subscription ends at the end of the period you paid for.", "success")
    except ShopError as error:
        db.session.rollback()
        flash(error.message, "error")
    return redirect(url_for("shop.order", order_id=order_id), 303)
