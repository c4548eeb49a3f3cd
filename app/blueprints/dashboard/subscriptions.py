"""The dashboard's subscription pages (same login, same tenancy rules: a merchant user sees its
own, an operator all; anything else is a 404)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import RadioField, SelectChoice
from wtforms.validators import InputRequired

from app.blueprints.dashboard import bp
from app.blueprints.dashboard.routes import audit_action, own_merchant_id, scope_merchant_id
from app.errors import PayBridgeError
from app.extensions import db
from app.models import Merchant, Subscription, SubscriptionStatus
from app.models.subscription import payments_of
from app.reporting.subscriptions import list_subscriptions, payment_subscription
from app.subscriptions import service


class CancelSubscriptionForm(FlaskForm):
    when = RadioField(
        "When should it end?",
        choices=[
            SelectChoice("period_end", "At the end of the paid period: no more charges"),
            SelectChoice("now", "Now"),
        ],
        default="period_end",
        validators=[InputRequired()],
    )


@bp.context_processor
def subscription_context() -> dict:
    return {"payment_subscription": payment_subscription}


@bp.route("/subscriptions")
@login_required
def subscriptions():
    """Subscriptions, newest first, with their status and next billing date."""
    status = request.args.get("status") or None
    if status not in (None, *tuple(SubscriptionStatus)):
        status = None
    rows, older = list_subscriptions(
        scope_merchant_id(), status=status, before=request.args.get("before", type=int)
    )
    return render_template(
        "dashboard/subscriptions.html",
        rows=rows,
        older=older,
        status=status,
        statuses=tuple(SubscriptionStatus),
    )


def _subscription_or_404(public_id: str) -> Subscription:
    stmt = select(Subscription).where(Subscription.public_id == public_id)
    merchant_id = own_merchant_id()
    if merchant_id is not None:
        stmt = stmt.where(Subscription.merchant_id == merchant_id)
    subscription = db.session.execute(stmt).scalar_one_or_none()
    if subscription is None:
        abort(404, "No such subscription.")
    return subscription


@bp.route("/subscriptions/<public_id>")
@login_required
def subscription_detail(public_id: str):
    """One subscription: its terms, its state at the PSP, and every payment it made."""
    subscription = _subscription_or_404(public_id)
    return render_template(
        "dashboard/subscriptions_detail.html",
        sub=subscription,
        merchant=db.session.get(Merchant, subscription.merchant_id),
        payments=payments_of(db.session, subscription),
        charges={c.payment_id: c for c in subscription.charges},
    )


@bp.route("/subscriptions/<public_id>/cancel", methods=["GET", "POST"])
@login_required
def cancel_subscription(public_id: str):
    """Confirm, then cancel at the PSP (now, or at the end of the paid period)."""
    subscription = _subscription_or_404(public_id)
    detail_url = url_for("dashboard.subscription_detail", public_id=public_id)
    if subscription.status == SubscriptionStatus.CANCELLED:
        flash("This subscription is already cancelled.", "warning")
        return redirect(detail_url)
    form = CancelSubscriptionForm()
    if not form.validate_on_submit():
        code = 400 if request.method == "POST" else 200
        page = render_template("dashboard/subscriptions_cancel.html", sub=subscription, form=form)
        return page, code
    at_period_end = form.when.data == "period_end"
    subscription_id, merchant_id = subscription.id, subscription.merchant_id
    try:
        result = service.cancel_subscription(subscription_id, at_period_end=at_period_end)
        outcome = {"result": "ok", "status": result.status, "at_period_end": at_period_end}
        if result.status == SubscriptionStatus.CANCELLED:
            flash(f"Subscription {public_id} is cancelled.", "success")
        else:
            flash(f"Subscription {public_id} ends at the end of its paid period.", "success")
    except PayBridgeError as exc:
        db.session.rollback()
        outcome = {"result": "error", "code": exc.code, "at_period_end": at_period_end}
        flash(f"The subscription was not cancelled: {exc.message}", "error")
    audit_action(
        "subscription_cancel",
        merchant_id=merchant_id,
        target_type="subscription",
        target_id=public_id,
        detail=outcome,
    )
    db.session.commit()
    return redirect(detail_url)
