"""The test-data switch: which of Stripe's modes (test or live) the dashboard shows."""

from __future__ import annotations

from flask import abort, redirect
from flask_login import current_user, login_required

from app.blueprints.dashboard import bp
from app.blueprints.dashboard.actions import audited
from app.blueprints.dashboard.forms import ModeForm
from app.blueprints.dashboard.shared import choose_livemode, safe_next


@bp.route("/mode", methods=["POST"])
@login_required
def switch_mode():
    """Show test or live data from now on (POST with CSRF), then go back to the page. Audited:
    live data is the merchant's customers' data."""
    form = ModeForm()
    if not form.validate_on_submit():
        abort(400, "The form expired or names no mode; please try again.")
    choose_livemode(form.livemode)
    audited(
        "mode_switch",
        merchant_id=current_user.merchant_id,
        target=("user", current_user.id),
        detail={"livemode": form.livemode},
    )
    return redirect(safe_next(form.next.data))
