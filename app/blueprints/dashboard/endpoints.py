"""A merchant's notification endpoints, in the mode in view: list, add, edit, disable or
enable, rotate the secret, delete. Each change is audited; a secret is shown on the answer that
made it (creation, rotation) or to a POST that asks (reveal), never on a plain page.

An operator picks the merchant first (?merchant_id=…); a merchant user always gets its own.
"""

from __future__ import annotations

import json

from flask import abort, current_app, flash, redirect, render_template, request
from flask_login import login_required

from app.blueprints.dashboard import bp
from app.blueprints.dashboard.actions import Done, audited, form_page, form_status, perform
from app.blueprints.dashboard.forms import ConfirmForm, EndpointForm, TestEventForm
from app.blueprints.dashboard.shared import (
    chosen_merchant,
    merchant_url,
    pick_merchant,
    settings_merchant,
    view_livemode,
)
from app.errors import PayBridgeError
from app.models import Merchant, NotificationEndpoint
from app.notifications import endpoints as service
from app.notifications import health, test_events
from app.notifications.event_types import EVENT_TYPES


def _networks():
    return current_app.config["NOTIFY_ALLOWED_NETWORKS"]


def _endpoint_or_404(
    merchant: Merchant, public_id: str, *, for_update: bool = False
) -> NotificationEndpoint:
    """The endpoint; `for_update` on a change (locked, as committed now: see get_endpoint)."""
    try:
        return service.get_endpoint(merchant.id, public_id, view_livemode(), for_update=for_update)
    except PayBridgeError:
        abort(404, "No such notification endpoint (in the mode in view).")


@bp.route("/notification-endpoints", methods=["GET", "POST"])
@login_required
def endpoints():
    """The endpoints of the mode in view, and the form that adds one (its secret is shown on the
    answer that added it)."""
    merchant = settings_merchant()
    if merchant is None:
        return pick_merchant("dashboard.endpoints", "Notification endpoints")
    form = EndpointForm() if request.method == "POST" else EndpointForm(formdata=None)
    if not form.validate_on_submit():
        return _list_page(merchant, form), form_status()
    done = audited(
        "endpoint_create",
        merchant_id=merchant.id,
        act=lambda: _create(merchant, form),
    )
    endpoint, secret = done.value
    return _endpoint_page(merchant, endpoint, EndpointForm.of(endpoint), secret=secret)


def _create(merchant: Merchant, form: EndpointForm) -> Done:
    endpoint = service.create_endpoint(
        merchant.id,
        view_livemode(),
        url=form.url.data,
        event_types=form.event_types,
        description=form.description.data,
        allowed_networks=_networks(),
    )
    return Done(
        "The endpoint is added.",
        {"url": endpoint.url, "events": endpoint.event_types, "livemode": endpoint.livemode},
        target=("notification_endpoint", endpoint.public_id),
        value=(endpoint, endpoint.signing_secret),
    )


def _list_page(merchant: Merchant, form: EndpointForm) -> str:
    return render_template(
        "dashboard/endpoints.html",
        merchant=merchant,
        endpoints=service.of_merchant(merchant.id, view_livemode()),
        form=form,
        event_types=EVENT_TYPES,
    )


def _endpoint_page(
    merchant: Merchant,
    endpoint: NotificationEndpoint,
    form: EndpointForm,
    secret=None,
    test_form: TestEventForm | None = None,
    test=None,
) -> str:
    return render_template(
        "dashboard/endpoint.html",
        merchant=merchant,
        endpoint=endpoint,
        form=form,
        confirm=ConfirmForm(),
        secret=secret,
        test_form=test_form or TestEventForm(formdata=None),
        test=test,
        test_body=_json_or_none(test.request_body) if test is not None else None,
    )


def _json_or_none(text: str | None):
    """The test event's body, parsed to be shown indented (it is always our own JSON)."""
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


@bp.route("/notification-endpoints/<string:public_id>", methods=["GET", "POST"])
@login_required
def endpoint_detail(public_id: str):
    """One endpoint: edit its URL, description and event types."""
    merchant = settings_merchant() if request.method == "GET" else chosen_merchant()
    if merchant is None:
        return pick_merchant("dashboard.endpoints", "Notification endpoints")
    endpoint = _endpoint_or_404(merchant, public_id, for_update=request.method == "POST")
    form = EndpointForm() if request.method == "POST" else EndpointForm.of(endpoint)
    if not form.validate_on_submit():
        return _endpoint_page(merchant, endpoint, form), form_status()
    changes = {
        "url": form.url.data,
        "description": form.description.data,
        "enabled_events": form.event_types,
    }
    return perform(
        "endpoint_update",
        merchant_id=merchant.id,
        target=("notification_endpoint", public_id),
        act=lambda: _update(endpoint, changes),
        back=merchant_url("dashboard.endpoint_detail", merchant.id, public_id=public_id),
    )


def _update(endpoint: NotificationEndpoint, changes: dict) -> Done:
    changed = service.update_endpoint(endpoint, changes, allowed_networks=_networks())
    return Done("The endpoint is saved." if changed else "Nothing changed.", changed)


@bp.route("/notification-endpoints/<string:public_id>/disable", methods=["POST"])
@login_required
def disable_endpoint(public_id: str):
    return _switch(public_id, disabled=True)


@bp.route("/notification-endpoints/<string:public_id>/enable", methods=["GET", "POST"])
@login_required
def enable_endpoint(public_id: str):
    """Confirm (saying how many notifications it missed while disabled), then enable it and,
    if asked (`redeliver`), queue those again to it."""
    merchant = chosen_merchant()
    endpoint = _endpoint_or_404(merchant, public_id, for_update=request.method == "POST")
    form = ConfirmForm()
    if request.method == "GET" or not form.validate_on_submit():
        if request.method == "POST":
            abort(400, "The form expired; please try again.")
        return form_page(
            "dashboard/confirm_endpoint.html",
            merchant=merchant,
            endpoint=endpoint,
            form=form,
            action="enable",
            missed=health.count_missed(endpoint),
            missed_since=health.missed_since(endpoint),
        )
    redeliver = request.form.get("redeliver") == "y"
    since = health.missed_since(endpoint)
    detail: dict[str, bool | int] = {"redeliver_missed": redeliver}
    if redeliver:
        detail["missed"] = health.count_missed(endpoint)
    # The enable and its audit entry commit together first; the redelivery then commits
    # batch by batch (health.redeliver_missed), so a long one cannot lose the audit entry.
    done = audited(
        "endpoint_enable",
        merchant_id=merchant.id,
        target=("notification_endpoint", public_id),
        act=lambda: _enable(endpoint),
        detail=detail,
    )
    if redeliver:
        count = health.redeliver_missed(endpoint, since)
        done = Done(
            f"The endpoint is enabled; {count} notification(s) it missed are on their way to it."
        )
    flash(done.message, done.category)
    return redirect(merchant_url("dashboard.endpoint_detail", merchant.id, public_id=public_id))


def _enable(endpoint: NotificationEndpoint) -> Done:
    service.update_endpoint(endpoint, {"disabled": False}, allowed_networks=_networks())
    return Done("The endpoint is enabled: new notifications go to it again.")


def _switch(public_id: str, *, disabled: bool):
    """Disable (its pending deliveries fail, resendable) or enable an endpoint."""
    merchant = chosen_merchant()
    endpoint = _endpoint_or_404(merchant, public_id, for_update=True)
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired; please try again.")
    return perform(
        "endpoint_disable" if disabled else "endpoint_enable",
        merchant_id=merchant.id,
        target=("notification_endpoint", public_id),
        act=lambda: _set_disabled(endpoint, disabled),
        back=merchant_url("dashboard.endpoint_detail", merchant.id, public_id=public_id),
    )


def _set_disabled(endpoint: NotificationEndpoint, disabled: bool) -> Done:
    service.update_endpoint(endpoint, {"disabled": disabled}, allowed_networks=_networks())
    if disabled:
        return Done("The endpoint is disabled: nothing is sent to it until you enable it.")
    return Done("The endpoint is enabled: new notifications go to it again.")


@bp.route("/notification-endpoints/<string:public_id>/secret/reveal", methods=["POST"])
@login_required
def reveal_endpoint_secret(public_id: str):
    """Show the endpoint's signing secret on this one response (POST, audited, never cached)."""
    merchant = chosen_merchant()
    endpoint = _endpoint_or_404(merchant, public_id)
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired; please try again.")
    audited("secret_reveal", merchant_id=merchant.id, target=("notification_endpoint", public_id))
    return _endpoint_page(
        merchant, endpoint, EndpointForm.of(endpoint), secret=endpoint.signing_secret
    )


@bp.route("/notification-endpoints/<string:public_id>/secret/rotate", methods=["GET", "POST"])
@login_required
def rotate_endpoint_secret(public_id: str):
    """Confirm, then rotate the secret (the previous one keeps signing); shows the new one."""
    merchant = chosen_merchant()
    endpoint = _endpoint_or_404(merchant, public_id, for_update=request.method == "POST")
    form = ConfirmForm()
    if not form.validate_on_submit():
        return form_page(
            "dashboard/confirm_endpoint.html",
            merchant=merchant,
            endpoint=endpoint,
            form=form,
            action="rotate",
            grace=_span(current_app.config["NOTIFY_SECRET_ROTATION_GRACE_SECONDS"]) or None,
        )
    done = audited(
        "secret_rotate",
        merchant_id=merchant.id,
        target=("notification_endpoint", public_id),
        act=lambda: Done(
            value=service.rotate_secret(
                endpoint, current_app.config["NOTIFY_SECRET_ROTATION_GRACE_SECONDS"]
            )
        ),
    )
    return _endpoint_page(merchant, endpoint, EndpointForm.of(endpoint), secret=done.value)


def _span(seconds: int) -> str:
    """A grace period as people say it: "24 hours", "90 minutes", "45 seconds" ("": none)."""
    if not seconds:
        return ""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


@bp.route("/notification-endpoints/<string:public_id>/delete", methods=["GET", "POST"])
@login_required
def delete_endpoint(public_id: str):
    """Confirm, then delete: nothing more is sent to it."""
    merchant = chosen_merchant()
    endpoint = _endpoint_or_404(merchant, public_id, for_update=request.method == "POST")
    form = ConfirmForm()
    if not form.validate_on_submit():
        return form_page(
            "dashboard/confirm_endpoint.html",
            merchant=merchant,
            endpoint=endpoint,
            form=form,
            action="delete",
        )
    url = endpoint.url
    return perform(
        "endpoint_delete",
        merchant_id=merchant.id,
        target=("notification_endpoint", public_id),
        act=lambda: _delete(endpoint),
        back=merchant_url("dashboard.endpoints", merchant.id),
        detail={"url": url},
    )


def _delete(endpoint: NotificationEndpoint) -> Done:
    service.delete_endpoint(endpoint)
    return Done(f"The endpoint {endpoint.url} is deleted.")


@bp.route("/notification-endpoints/<string:public_id>/test", methods=["POST"])
@login_required
def send_test_event(public_id: str):
    """Send a made-up event of the chosen type to the endpoint now; the page shows the request
    and the answer (or why it was not sent). Audited; rate limited per merchant."""
    merchant = chosen_merchant()
    endpoint = _endpoint_or_404(merchant, public_id)
    form = TestEventForm()
    if not form.validate_on_submit():
        page = _endpoint_page(merchant, endpoint, EndpointForm.of(endpoint), test_form=form)
        return page, 400
    event_type = form.type.data
    done = audited(
        "endpoint_test",
        merchant_id=merchant.id,
        target=("notification_endpoint", public_id),
        act=lambda: _send_test(endpoint, event_type),
        failure="The test event was not sent",
        detail={"type": event_type},
    )
    if done.message:
        flash(done.message, done.category)
    return _endpoint_page(
        merchant, endpoint, EndpointForm.of(endpoint), test_form=form, test=done.value
    )


def _send_test(endpoint: NotificationEndpoint, event_type: str) -> Done:
    test = test_events.send_test_event(endpoint, event_type)
    outcome = {"id": test.public_id, "status_code": test.status_code, "error": test.error}
    return Done(detail=outcome, value=test)
