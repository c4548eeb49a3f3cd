"""The delivery log: every delivery of the mode in view, filtered and paged; one delivery with
each attempt's request and response; redelivering one, or every failed delivery of an endpoint
in a time window (counted on a confirmation page first). Redeliveries are audited."""

from __future__ import annotations

from flask import abort, flash, render_template, request, url_for
from flask_login import login_required

from app.blueprints.dashboard import bp
from app.blueprints.dashboard.actions import Done, decline, form_page, perform
from app.blueprints.dashboard.forms import ConfirmForm, DeliveryFilterForm, RedeliverWindowForm
from app.blueprints.dashboard.shared import (
    act_in_view,
    chosen_merchant,
    merchant_filter_choices,
    merchant_url,
    own_merchant_id,
    query_args,
    scope_merchant_id,
    view_livemode,
    viewer_zone,
)
from app.errors import PayBridgeError
from app.models import NotificationEndpoint, iso
from app.notifications import endpoints as endpoint_service
from app.notifications import redelivery
from app.reporting import deliveries as log
from app.reporting.transactions import BadCursor


@bp.route("/deliveries")
@login_required
def deliveries():
    """Every delivery of the mode in view, newest event first, filtered, in keyset pages."""
    merchant_id = scope_merchant_id()
    livemode = view_livemode()
    form = DeliveryFilterForm(
        formdata=request.args,
        endpoints=log.endpoints_in_view(merchant_id, livemode),
        zone=viewer_zone(),
    )
    valid = form.validate()
    result = log.DeliveryPage(rows=[], older=None, newer=None)  # never unfiltered for filtered
    if valid:
        f = form.to_filter(merchant_id, livemode)
        try:
            result = log.page(f, after=request.args.get("after"), before=request.args.get("before"))
        except BadCursor as exc:
            flash(str(exc), "warning")
            result = log.page(f)
    page = render_template(
        "dashboard/deliveries.html",
        form=form,
        page=result,
        status_of=log.status_of,
        query_args=query_args("after", "before"),
        merchants=merchant_filter_choices(),
    )
    return page, 200 if valid else 400


def _delivery_or_404(delivery_id: int):
    delivery = log.delivery_in_scope(delivery_id, merchant_id=own_merchant_id())
    if delivery is None:
        abort(404, "No such delivery.")
    return delivery


@bp.route("/deliveries/<int:delivery_id>")
@login_required
def delivery_detail(delivery_id: int):
    """One delivery: its event, endpoint, state, and every attempt's request and response."""
    delivery = _delivery_or_404(delivery_id)
    return render_template(
        "dashboard/delivery.html",
        delivery=delivery,
        status=log.status_of(delivery),
        attempts=log.attempts_of(delivery),
        other_mode=delivery.notification.livemode != view_livemode(),
    )


@bp.route("/deliveries/<int:delivery_id>/redeliver", methods=["GET", "POST"])
@login_required
def redeliver_delivery(delivery_id: int):
    """Confirm, then send this delivery again to its endpoint (same body and webhook-id)."""
    delivery = _delivery_or_404(delivery_id)
    back = url_for("dashboard.delivery_detail", delivery_id=delivery_id)
    act_in_view(delivery.notification.livemode, "delivery's event", back)
    if delivery.status == delivery.STATUS_PENDING:
        return decline(
            "This delivery is still being sent; redeliver it once it has finished.", back
        )
    form = ConfirmForm()
    if not form.validate_on_submit():
        return form_page(
            "dashboard/confirm_redeliver.html", delivery=delivery, form=form, back=back
        )
    msg_id = delivery.notification.public_id
    return perform(
        "delivery_redeliver",
        merchant_id=delivery.notification.merchant_id,
        target=("notification", msg_id),
        act=lambda: _redeliver_one(delivery_id),
        failure="The delivery was not queued",
        detail={"endpoint": delivery.endpoint.public_id},
        back=back,
    )


def _redeliver_one(delivery_id: int) -> Done:
    delivery = redelivery.redeliver_delivery(delivery_id)
    return Done(
        f"Queued: {delivery.notification.public_id} goes to {delivery.endpoint.url} again.",
        {"delivery": delivery_id},
    )


@bp.route("/notification-endpoints/<string:public_id>/redeliver", methods=["GET", "POST"])
@login_required
def redeliver_failed(public_id: str):
    """Every failed delivery to an endpoint of events created in a time window: choose the
    window, see how many on the confirmation, then queue exactly those (in batches)."""
    merchant = chosen_merchant()
    try:
        endpoint = endpoint_service.get_endpoint(merchant.id, public_id, view_livemode())
    except PayBridgeError:
        abort(404, "No such notification endpoint (in the mode in view).")
    back = merchant_url("dashboard.endpoint_detail", merchant.id, public_id=public_id)
    if request.method == "GET":
        form = RedeliverWindowForm(formdata=request.args, meta={"csrf": False}, zone=viewer_zone())
        count = newest = None
        if "count" in request.args and form.validate():
            window = redelivery.FailedWindow(**form.window(endpoint.id))
            count, newest = redelivery.count_failed(window)
        page = render_template(
            "dashboard/redeliver_failed.html",
            endpoint=endpoint,
            merchant=merchant,
            form=form,
            confirm=ConfirmForm(),
            count=count,
            upto=newest or 0,
            back=back,
        )
        return page, 400 if form.errors else 200
    form = RedeliverWindowForm(zone=viewer_zone())
    if not form.validate_on_submit():
        abort(400, "The form expired or its window is not valid; count the deliveries again.")
    window = redelivery.FailedWindow(**form.window(endpoint.id), upto_id=form.upto_id() or 0)
    return perform(
        "endpoint_redeliver_failed",
        merchant_id=merchant.id,
        target=("notification_endpoint", public_id),
        act=lambda: _redeliver_window(endpoint, window),
        failure="Nothing was queued",
        # The window as it was read: UTC instants saying so (iso: "…Z"), and the zone whose
        # wall-clock minutes were typed.
        detail={
            "created_gte": iso(window.created_gte),
            "created_lte": iso(window.created_lte),
            "typed_in_zone": form.zone.key,
        },
        back=back,
    )


def _redeliver_window(endpoint: NotificationEndpoint, window: redelivery.FailedWindow) -> Done:
    queued = redelivery.redeliver_failed(endpoint, window)
    if not queued:
        return Done(
            "Nothing to send: none of these deliveries is failed any more.",
            {"queued": 0},
            category="warning",
        )
    return Done(
        f"Queued {queued:,} failed deliver{'y' if queued == 1 else 'ies'} to {endpoint.url} again.",
        {"queued": queued},
    )
