"""The overview: volumes, amounts, success rate and what needs attention."""

from __future__ import annotations

from flask import render_template
from flask_login import login_required

from app.blueprints.dashboard import bp
from app.blueprints.dashboard.shared import (
    merchant_filter_choices,
    scope_merchant_id,
    view_livemode,
)
from app.reporting import charts, queries


@bp.route("/")
@login_required
def overview():
    """Volumes, amounts, success rate and what needs attention."""
    merchant_id = scope_merchant_id()
    data = queries.overview(merchant_id=merchant_id, livemode=view_livemode())
    return render_template(
        "dashboard/overview.html",
        data=data,
        volume_chart=charts.volume_chart(data.days),
        amount_charts=[charts.amount_chart(data.days, cur) for cur in data.currencies[:3]],
        merchant_id=merchant_id,
        merchants=merchant_filter_choices(),
        cap=queries.COUNT_CAP,
    )
