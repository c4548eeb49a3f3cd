"""The dashboard's subscription pages, added to the dashboard blueprint (same login, same
tenancy rules: a merchant user sees its own, an operator all; anything else is a 404).

The routes are added when this module is imported: `app.subscriptions.init_app` imports it
before the app factory registers the blueprints."""

from __future__ import annotations

from flask import abort, render_template, request
from flask_login import login_required
from sqlalchemy import select

from app.blueprints.dashboard import bp
from app.blueprints.dashboard.routes import own_merchant_id, scope_merchant_id
from app.extensions import db
from app.models import Merchant, Subscription
from app.subscriptions.service import subscription_payments

PAGE_SIZE = 50


def list_subscriptions(
    merchant_id: int | None, *, status: str | None, before: int | None
) -> tuple[list[Subscription], int | None]:
    """One page, newest first: (rows, the cursor of the next older page or None)."""
    stmt = select(Subscription)
    if merchant_id is not None:
        stmt = stmt.where(Subscription.merchant_id == merchant_id)
    if status:
        stmt = stmt.where(Subscription.status == status)
    if before:
        stmt = stmt.where(Subscription.id < before)
    rows = list(
        db.session.execute(stmt.order_by(Subscription.id.desc()).limit(PAGE_SIZE + 1)).scalars()
    )
    older = rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None
    return rows[:PAGE_SIZE], older


@bp.route("/subscriptions")
@login_required
def subscriptions():
    """Subscriptions, newest first, with their status and next billing date."""
    status = request.args.get("status") or None
    if status not in (None, *Subscription.STATUSES):
        status = None
    rows, older = list_subscriptions(
        scope_merchant_id(), status=status, before=request.args.get("before", type=int)
    )
    return render_template(
        "dashboard/subscriptions.html",
        rows=rows,
        older=older,
        status=status,
        statuses=Subscription.STATUSES,
    )


@bp.route("/subscriptions/<public_id>")
@login_required
def subscription_detail(public_id: str):
    """One subscription: its terms, its state at the PSP, and every payment it made."""
    stmt = select(Subscription).where(Subscription.public_id == public_id)
    merchant_id = own_merchant_id()
    if merchant_id is not None:
        stmt = stmt.where(Subscription.merchant_id == merchant_id)
    subscription = db.session.execute(stmt).scalar_one_or_none()
    if subscription is None:
        abort(404, "No such subscription.")
    return render_template(
        "dashboard/subscription.html",
        sub=subscription,
        merchant=db.session.get(Merchant, subscription.merchant_id),
        payments=subscription_payments(subscription),
        charges={c.payment_id: c for c in subscription.charges},
    )
