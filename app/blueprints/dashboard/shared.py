"""What every dashboard page shares: whose data a request may see, in which mode, the audit
call, the redirect after log-in, the template helpers and the no-store header.

Tenancy: a merchant user's scope is its own merchant_id, always taken from the logged-in user;
an operator's scope is every merchant, narrowed by an optional `merchant_id` filter. Anything
outside the scope answers 404, exactly as if it did not exist.

Mode: like Stripe's dashboard, every list and figure shows test or live data, never both
(`view_livemode`). The choice is kept in the session cookie for the session (it only chooses
what to show: tenancy decides what may be seen); a new session starts in live mode when there
is live data in the user's scope, else in test mode.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Response,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user

from app.accounts import audit
from app.blueprints.dashboard import bp
from app.common import cursors, payment_methods
from app.common.money import format_minor, format_money
from app.common.timezones import to_local, zone_of
from app.common.urls import split_url
from app.errors import ValidationError
from app.models import DisputeState, Merchant, Payment, User, iso, utcnow
from app.notifications import health as endpoint_health
from app.payments import failure_reasons
from app.reporting import queries
from app.reporting.disputes import due_summary
from app.reporting.modes import has_live_data
from app.reporting.subscriptions import payment_subscription

# --- tenancy ----------------------------------------------------------------------------------


def is_operator() -> bool:
    return current_user.is_authenticated and current_user.is_operator


def scope_merchant_id() -> int | None:
    """The merchant whose data this request may see; None = all (operators only)."""
    if is_operator():
        return request.values.get("merchant_id", type=int)
    if current_user.merchant_id is None:
        abort(403, "Your account is not linked to a merchant. Ask an operator to fix it.")
    return current_user.merchant_id


def own_merchant_id() -> int | None:
    """The scope for loading one object by id: a merchant's own, or anything for operators."""
    return None if is_operator() else scope_merchant_id()


def operator_required() -> None:
    if not is_operator():
        abort(403, "Only operators can do this.")


def settings_merchant() -> Merchant | None:
    """The one merchant a keys/settings page acts on (operators pick it); None = must pick."""
    merchant_id = scope_merchant_id()
    if merchant_id is None:
        return None
    merchant = queries.get_merchant(merchant_id)
    if merchant is None:
        abort(404, "No such merchant.")
    return merchant


def chosen_merchant() -> Merchant:
    """The settings merchant of a request that changes something: an operator must have picked."""
    merchant = settings_merchant()
    if merchant is None:
        abort(404, "No such merchant.")
    return merchant


def merchant_url(endpoint: str, merchant_id: int, **kwargs) -> str:
    """A settings page of `merchant_id`, keeping an operator's choice of merchant."""
    if is_operator():
        kwargs["merchant_id"] = merchant_id
    return url_for(endpoint, **kwargs)


def merchant_filter_choices() -> list[Merchant]:
    """The merchants an operator can narrow a list to (a merchant user has no such filter)."""
    return queries.merchants() if is_operator() else []


def pick_merchant(endpoint: str, title: str, why: str | None = None) -> str:
    """The page that asks an operator which merchant's settings (or other pages of one
    merchant: `why` says so) to open."""
    return render_template(
        "dashboard/pick_merchant.html",
        merchants=queries.merchants(),
        endpoint=endpoint,
        title=title,
        why=why,
    )


# --- time zone ------------------------------------------------------------------------------


def viewer_zone() -> ZoneInfo:
    """The zone this request's days and times are shown in: the merchant in scope's (a
    merchant user's own, the one an operator picked), UTC for an operator's all-merchant view."""
    if "viewer_zone" not in g:
        merchant = None
        if current_user.is_authenticated:
            merchant_id = (
                request.values.get("merchant_id", type=int)
                if is_operator()
                else current_user.merchant_id
            )
            merchant = queries.get_merchant(merchant_id) if merchant_id else None
        g.viewer_zone = zone_of(merchant.time_zone if merchant else None)
    return g.viewer_zone


def local_minute(value: datetime) -> str:
    """A stored time to the minute in the viewer's zone, as the lists show it (their column
    heads name the zone: `zone_label`)."""
    return local_strftime(value, "%Y-%m-%d %H:%M")


def local_strftime(value: datetime, fmt: str) -> str:
    """A stored time in the viewer's zone, formatted (`fmt` as strftime's); the page names the
    zone (`zone_label`)."""
    return to_local(value, viewer_zone()).strftime(fmt)


def zone_label() -> str:
    """The viewer's zone as the lists' column heads name it (UTC until a merchant sets one)."""
    return viewer_zone().key


def local_time(value: datetime) -> str:
    """A stored time as the dashboard shows it: in the viewer's zone, with the zone's
    abbreviation (2026-12-07 13:05:00 CET; UTC until a merchant sets its zone)."""
    local = to_local(value, viewer_zone())
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


# --- mode -------------------------------------------------------------------------------------

# Where the session cookie keeps the mode chosen (True: live data, False: test data).
MODE_KEY = "dashboard_livemode"


def view_livemode() -> bool:
    """Which of Stripe's modes the dashboard shows this user: the one chosen in this session,
    else live when the user's scope has live data (a live API key), else test."""
    chosen = session.get(MODE_KEY)
    if not isinstance(chosen, bool):
        if not is_operator() and current_user.merchant_id is None:
            return False  # nothing to see in either mode (the page answers 403)
        chosen = session[MODE_KEY] = has_live_data(own_merchant_id())
    return chosen


def choose_livemode(livemode: bool) -> None:
    session[MODE_KEY] = livemode


def payment_or_404(public_id: str) -> Payment:
    payment = queries.payment_by_public_id(public_id, merchant_id=own_merchant_id())
    if payment is None:
        abort(404, "No such payment.")
    return payment


def act_in_view(livemode: bool, what: str, back: str) -> None:
    """Actions touch only the mode in view, so nobody refunds real money believing it a test:
    an action on the other mode's object says so and goes `back`, doing nothing."""
    if livemode != view_livemode():
        mode, shown = ("live", "test") if livemode else ("test", "live")
        flash(
            f"Nothing was done: this {what} is in {mode} mode and you are viewing {shown} "
            f"data. Switch to {mode} data to act on it.",
            "warning",
        )
        abort(redirect(back))


def payment_to_act_on(public_id: str) -> Payment:
    """The payment an action is about: in the scope (else 404) and in the mode in view."""
    payment = payment_or_404(public_id)
    act_in_view(payment.livemode, "payment", payment_url(public_id))
    return payment


def payment_url(public_id: str) -> str:
    return url_for("dashboard.payment_detail", public_id=public_id)


# --- requests ---------------------------------------------------------------------------------


def audit_action(
    action: str, *, merchant_id: int | None, user: User | None = None, **kwargs
) -> None:
    """Append an audit row for the request's user, or `user` (committed with the action)."""
    if user is None and current_user.is_authenticated:
        user = current_user
    audit.record(
        action,
        user=user,
        merchant_id=merchant_id,
        ip=request.remote_addr,
        user_agent=request.user_agent.string,
        **kwargs,
    )


def safe_next(target: str | None) -> str:
    """Only ever redirect after log-in to a page of this dashboard (no open redirect)."""
    if target:
        try:
            parts = split_url(target)
        except ValidationError:  # not even a URL: certainly not one of our pages
            return url_for("dashboard.overview")
        if (
            not parts.scheme
            and not parts.netloc
            and target.startswith("/dashboard")
            and not target.startswith("//")
            and "\\" not in target
        ):
            return target
    return url_for("dashboard.overview")


def query_args(*names: str) -> dict[str, str]:
    """The query string without its page cursors: what the next page's links carry on."""
    return {k: v for k, v in request.args.items() if k not in names and v}


@dataclass(frozen=True)
class FilterChip:
    """An active filter as the list shows it, with the link to the list without it."""

    name: str
    label: str
    value: str
    remove_url: str


def filter_chips(form, endpoint: str) -> list[FilterChip]:
    """The chips of a ListFilterForm's active filters (a removed filter starts from page one)."""
    args: dict[str, Any] = query_args("after", "before")
    return [
        FilterChip(
            name,
            label,
            value,
            url_for(endpoint, **{k: v for k, v in args.items() if k != name}),
        )
        for name, label, value in form.active()
    ]


def before_id(scope: str) -> int | None:
    """The row id the `before` link of a list paged by id stands for (None: the first page).
    A link that is not one this list made (altered, or from before a SECRET_KEY change) shows
    the first page with a warning."""
    token = request.args.get("before")
    if not token:
        return None
    try:
        return cursors.decode_id(token, scope)
    except cursors.InvalidCursor:
        flash("This page link is not valid any more; showing the newest entries.", "warning")
        return None


def before_link(row_id: int | None, scope: str) -> str | None:
    """The opaque `before` value of the next older page, None on the last page."""
    return None if row_id is None else cursors.encode_id(row_id, scope)


# --- every response ---------------------------------------------------------------------------


def mode_return_url() -> str:
    """Where switching modes goes back to: this page without its page cursors (a position in
    one mode's list means nothing in the other's); the overview after a form that only posts."""
    rule, endpoint = request.url_rule, request.endpoint
    if rule is None or endpoint is None or "GET" not in (rule.methods or ()):
        return url_for("dashboard.overview")
    values: dict[str, Any] = {**(request.view_args or {}), **query_args("after", "before")}
    return url_for(endpoint, **values)


def disputes_in_view():
    """(live, summary) of the scope's disputes that need a response they can still get (the
    banner): the mode in view's, and the live ones too while test data is in view: real money
    waits on those whatever the merchant is looking at."""
    if not is_operator() and current_user.merchant_id is None:
        return []
    merchant_id, now = scope_merchant_id(), utcnow()
    modes = (True,) if view_livemode() else (False, True)
    return [(live, due_summary(merchant_id, livemode=live, now=now)) for live in modes]


def failing_endpoints_in_view():
    """The scope's endpoints, in the mode in view, disabled for failing (the banner)."""
    if not is_operator() and current_user.merchant_id is None:
        return None
    return endpoint_health.disabled_for_failing(scope_merchant_id(), view_livemode())


@bp.context_processor
def dashboard_context() -> dict:
    shows_mode = current_user.is_authenticated and request.endpoint is not None
    return {
        "livemode": view_livemode() if shows_mode else None,
        # The banner of every page while a dispute waits for an answer (one indexed query).
        "disputes_due": disputes_in_view if shows_mode else None,
        # ... and while an endpoint is disabled because every attempt failed for too long.
        "failing_endpoints": failing_endpoints_in_view if shows_mode else None,
        "mode_return_url": mode_return_url if shows_mode else None,
        "money": format_money,
        "minor": format_minor,
        "iso": iso,
        "local_time": local_time,
        "local_minute": local_minute,
        "local_strftime": local_strftime,
        "zone_label": zone_label,
        "is_operator": is_operator(),
        "pretty_json": lambda value: json.dumps(value, indent=2, sort_keys=True, default=str),
        "payment_subscription": payment_subscription,
        "failure_words": failure_reasons.words,
        "canceled_reasons": failure_reasons.CANCELED_REASONS,
        "method_words": payment_methods.label,
        "dispute_state_label": lambda state: DisputeState(state).label,
    }


@bp.after_request
def private_headers(response: Response) -> Response:
    # Payment data and secrets: never cached. (Framing, sniffing and the content policy are
    # every page's: app/security_headers.py.)
    response.headers["Cache-Control"] = "no-store"
    return response
