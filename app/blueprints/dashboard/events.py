"""The PSP's webhook events as PayBridge received them, and what it did with each."""

from __future__ import annotations

from flask import abort, render_template, request
from flask_login import login_required

from app.blueprints.dashboard import bp
from app.blueprints.dashboard.forms import EventFilterForm
from app.blueprints.dashboard.shared import (
    before_id,
    before_link,
    merchant_filter_choices,
    own_merchant_id,
    query_args,
    scope_merchant_id,
    view_livemode,
)
from app.common.cursors import older_page
from app.reporting import queries


@bp.route("/events")
@login_required
def events():
    """PSP webhook events, filterable by outcome and type."""
    merchant_id = scope_merchant_id()
    form = EventFilterForm(
        formdata=request.args, outcomes=queries.EVENT_OUTCOMES, event_types=queries.event_types()
    )
    valid = form.validate()
    before = before_id("dashboard.events")
    rows = queries.events(
        merchant_id=merchant_id, livemode=view_livemode(), before_id=before, **form.filters()
    )
    rows, last_id = older_page(rows, queries.LIST_PAGE_SIZE)
    page = render_template(
        "dashboard/events.html",
        form=form,
        rows=rows,
        next_before=before_link(last_id, "dashboard.events"),
        query_args=query_args("before"),
        merchants=merchant_filter_choices(),
        merchant_id=merchant_id,
    )
    return page, 200 if valid else 400


@bp.route("/events/<int:event_id>")
@login_required
def event_detail(event_id: int):
    """One PSP event with its raw payload."""
    event = queries.event_in_scope(event_id, merchant_id=own_merchant_id())
    if event is None:
        abort(404, "No such event.")
    return render_template("dashboard/event.html", event=event)
