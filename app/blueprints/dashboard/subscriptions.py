"""Subscriptions: the list, one subscription with its payments, and cancelling one."""

from __future__ import annotations

from flask import abort, render_template, request, url_for
from flask_login import login_required

from app.blueprints.dashboard import bp
from app.blueprints.dashboard.actions import Done, decline, form_page, perform
from app.blueprints.dashboard.forms import CancelSubscriptionForm, one_of
from app.blueprints.dashboard.shared import (
    act_in_view,
    before_id,
    before_link,
    own_merchant_id,
    scope_merchant_id,
    view_livemode,
)
from app.extensions import db
from app.models import Subscription, SubscriptionStatus
from app.models.subscription import payments_of
from app.reporting import queries
from app.reporting.subscriptions import list_subscriptions, subscription_in_scope
from app.subscriptions import service


@bp.route("/subscriptions")
@login_required
def subscriptions():
    """Subscriptions, newest first, with their status and next billing date."""
    status = one_of(request.args.get("status"), SubscriptionStatus)
    rows, last_id = list_subscriptions(
        scope_merchant_id(),
        livemode=view_livemode(),
        status=status,
        before=before_id("dashboard.subscriptions"),
    )
    return render_template(
        "dashboard/subscriptions.html",
        rows=rows,
        older=before_link(last_id, "dashboard.subscriptions"),
        status=status,
        statuses=tuple(SubscriptionStatus),
    )


def _subscription_or_404(public_id: str) -> Subscription:
    subscription = subscription_in_scope(public_id, merchant_id=own_merchant_id())
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
        merchant=queries.get_merchant(subscription.merchant_id),
        payments=payments_of(db.session, subscription),
        charges={c.payment_id: c for c in subscription.charges},
    )


@bp.route("/subscriptions/<public_id>/cancel", methods=["GET", "POST"])
@login_required
def cancel_subscription(public_id: str):
    """Confirm, then cancel at the PSP (now, or at the end of the paid period)."""
    subscription = _subscription_or_404(public_id)
    back = url_for("dashboard.subscription_detail", public_id=public_id)
    act_in_view(subscription.livemode, "subscription", back)
    if subscription.status == SubscriptionStatus.CANCELLED:
        return decline("This subscription is already cancelled.", back)
    form = CancelSubscriptionForm()
    if not form.validate_on_submit():
        return form_page("dashboard/subscriptions_cancel.html", sub=subscription, form=form)
    subscription_id, at_period_end = subscription.id, form.when.data == "period_end"
    return perform(
        "subscription_cancel",
        merchant_id=subscription.merchant_id,
        target=("subscription", public_id),
        act=lambda: _cancel(subscription_id, public_id, at_period_end),
        failure="The subscription was not cancelled",
        back=back,
        detail={"at_period_end": at_period_end},
    )


def _cancel(subscription_id: int, public_id: str, at_period_end: bool) -> Done:
    result = service.cancel_subscription(subscription_id, at_period_end=at_period_end)
    if result.status == SubscriptionStatus.CANCELLED:
        return Done(f"Subscription {public_id} is cancelled.", {"status": result.status})
    message = f"Subscription {public_id} ends at the end of its paid period."
    return Done(message, {"status": result.status})
