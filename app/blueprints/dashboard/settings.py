"""A merchant's settings: API keys (notification endpoints: `endpoints.py`).

An operator picks the merchant first (?merchant_id=…); a merchant user always gets its own.
"""

from __future__ import annotations

from flask import abort, current_app, render_template, request
from flask_login import login_required

from app.accounts import api_keys as keys
from app.accounts import service as accounts
from app.blueprints.dashboard import bp
from app.blueprints.dashboard.actions import Done, audited, form_page, form_status, perform
from app.blueprints.dashboard.forms import ApiKeyForm, ConfirmForm, TimeZoneForm, mode_name
from app.blueprints.dashboard.shared import (
    chosen_merchant,
    merchant_url,
    pick_merchant,
    settings_merchant,
    view_livemode,
)
from app.common.timezones import zone_names
from app.models import ApiKey, Merchant

# --- API keys ---------------------------------------------------------------------------------


@bp.route("/api-keys", methods=["GET", "POST"])
@login_required
def api_keys():
    """List keys by prefix; create one (its raw value is shown on this response only)."""
    merchant = settings_merchant()
    if merchant is None:
        return pick_merchant("dashboard.api_keys", "API keys")
    form = ApiKeyForm() if request.method == "POST" else _new_key_form()
    if not form.validate_on_submit():
        return _keys_page(merchant, form), form_status()
    name, livemode = form.name.data, form.livemode
    created = audited(
        "api_key_create", merchant_id=merchant.id, act=lambda: _create(merchant, name, livemode)
    )
    return _keys_page(merchant, _new_key_form(), raw_key=created.value)


def _new_key_form() -> ApiKeyForm:
    """An empty form for a key of the mode in view (as Stripe's keys page offers)."""
    return ApiKeyForm(formdata=None, mode=mode_name(view_livemode()))


def _keys_page(merchant: Merchant, form: ApiKeyForm, raw_key: str | None = None) -> str:
    return render_template(
        "dashboard/api_keys.html",
        merchant=merchant,
        keys=keys.of_merchant(merchant.id),
        form=form,
        raw_key=raw_key,
        confirm=ConfirmForm(),
        rate_limits=_rate_limits(merchant),
    )


def _rate_limits(merchant: Merchant) -> dict:
    """The API rate limits every key of the merchant has (its own, or the defaults)."""
    config = current_app.config
    return {
        "read": merchant.api_read_limit or config["API_RATE_LIMIT_READ_PER_SECOND"],
        "write": merchant.api_write_limit or config["API_RATE_LIMIT_WRITE_PER_SECOND"],
        "own": merchant.api_read_limit is not None or merchant.api_write_limit is not None,
    }


def _create(merchant: Merchant, name: str, livemode: bool) -> Done:
    key, raw_key = keys.create_api_key(merchant, name, livemode=livemode)
    detail = {"name": key.name, "livemode": key.livemode}
    return Done(detail=detail, target=("api_key", key.prefix), value=raw_key)


@bp.route("/api-keys/<int:key_id>/revoke", methods=["GET", "POST"])
@login_required
def revoke_api_key(key_id: int):
    """Confirm, then revoke a key: requests with it fail from now on."""
    merchant = settings_merchant()
    key = _key_or_404(merchant, key_id)
    form = ConfirmForm()
    if not form.validate_on_submit():
        return form_page("dashboard/confirm_revoke.html", key=key, merchant=merchant, form=form)
    prefix = key.prefix
    return perform(
        "api_key_revoke",
        merchant_id=merchant.id,
        target=("api_key", prefix),
        act=lambda: _revoke(merchant.id, key_id, prefix),
        back=merchant_url("dashboard.api_keys", merchant.id),
        detail={"name": key.name},
    )


def _key_or_404(merchant: Merchant | None, key_id: int) -> ApiKey:
    key = None
    if merchant is not None:
        key = next((k for k in keys.of_merchant(merchant.id) if k.id == key_id), None)
    if key is None:
        abort(404, "No such API key.")
    return key


def _revoke(merchant_id: int, key_id: int, prefix: str) -> Done:
    keys.revoke_api_key(merchant_id, key_id)
    return Done(f"API key {prefix}… is revoked.")


# --- settings: the time zone ----------------------------------------------------------------


@bp.route("/settings", methods=["GET"])
@login_required
def settings():
    """The merchant's time zone; notification endpoints (each with its URL and secret) have
    their own page."""
    merchant = settings_merchant()
    if merchant is None:
        return pick_merchant("dashboard.settings", "Settings")
    return _settings_page(merchant)


@bp.route("/settings/time-zone", methods=["POST"])
@login_required
def set_time_zone():
    """Change the time zone the dashboard's days and times are in."""
    merchant = chosen_merchant()
    form = TimeZoneForm()
    if not form.validate_on_submit():
        return _settings_page(merchant, zone_form=form), 400
    return perform(
        "time_zone_change",
        merchant_id=merchant.id,
        target=("merchant", merchant.id),
        act=lambda: _save_time_zone(merchant, form.time_zone.data),
        back=merchant_url("dashboard.settings", merchant.id),
    )


def _save_time_zone(merchant: Merchant, name: str) -> Done:
    old, new = accounts.set_time_zone(merchant, name)
    return Done(f"Times are shown in {new} from now on.", {"from": old, "to": new})


def _settings_page(merchant: Merchant, zone_form: TimeZoneForm | None = None) -> str:
    """The settings page; the form shows the saved value unless one was just sent."""
    zone_form = zone_form or TimeZoneForm(formdata=None, time_zone=merchant.time_zone)
    return render_template(
        "dashboard/settings.html",
        merchant=merchant,
        zone_form=zone_form,
        zone_names=zone_names(),
    )
