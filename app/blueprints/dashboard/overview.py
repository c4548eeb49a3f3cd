"""The overview: a merchant's money and rates over a period of its days, beside the previous
period, and what needs attention."""

from __future__ import annotations

from datetime import datetime

from flask import current_app, render_template, request
from flask_login import login_required

from app.blueprints.dashboard import bp
from app.blueprints.dashboard.shared import (
    merchant_filter_choices,
    scope_merchant_id,
    view_livemode,
    viewer_zone,
)
from app.models import utcnow
from app.payments import failure_reasons
from app.reporting import charts, queries
from app.reporting import overview as reporting
from app.reporting.periods import PRESETS, Period, PeriodError, parse_period

CHARTED_CURRENCIES = 3


@bp.route("/")
@login_required
def overview():
    """Gross, refunded, disputed and net volume per currency, conversion, charts of the days
    of the period asked for (last 30 days by default), and what needs attention."""
    merchant_id, livemode, now = scope_merchant_id(), view_livemode(), utcnow()
    period, error = _requested_period(now)
    figures = reporting.figures(merchant_id=merchant_id, livemode=livemode, period=period, now=now)
    charted = [f.currency for f in figures.currencies if f.current.gross][:CHARTED_CURRENCIES]
    reasons = [(_reason_words(r.code), r) for r in figures.failure_reasons]
    page = render_template(
        "dashboard/overview.html",
        figures=figures,
        attention=queries.attention(
            merchant_id=merchant_id,
            livemode=livemode,
            failed_within_days=current_app.config["EVENTS_RETENTION_DAYS"],
            now=now,
        ),
        volume_chart=charts.volume_chart(figures.days),
        amount_charts=[(cur, charts.amount_chart(figures.days, cur)) for cur in charted],
        reasons=reasons,
        reasons_chart=charts.breakdown_chart(
            "Failed payments by reason",
            [(words, r.count) for words, r in reasons if r.count],
            unit="failed payments",
            colour=charts.FAILED,
        ),
        methods_chart=charts.breakdown_chart(
            "Paid payments by payment method",
            [(m.label, m.count) for m in figures.methods],
            unit="paid payments",
            colour=charts.SUCCESS,
        ),
        presets=PRESETS,
        error=error,
        asked=request.args,
        zone=viewer_zone().key,
        merchant_id=merchant_id,
        merchants=merchant_filter_choices(),
        cap=queries.COUNT_CAP,
        change=reporting.change,
    )
    return page, 400 if error else 200


def _reason_words(code: str | None) -> str:
    return failure_reasons.words(code) or "Not recorded"


def _requested_period(now: datetime) -> tuple[Period, PeriodError | None]:
    """The period the query string asks for; a range that cannot be shown shows the default
    period, with what was wrong."""
    zone = viewer_zone()
    try:
        return parse_period(request.args, now=now, zone=zone), None
    except PeriodError as error:
        return parse_period({}, now=now, zone=zone), error
