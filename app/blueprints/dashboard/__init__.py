"""The merchant dashboard: server-rendered pages behind Flask-Login, under /dashboard.

One module per area (auth, modes, overview, payments, refunds, disputes, conflicts, notifications,
reconciliation, events, subscriptions, settings, audit_log). `shared` holds what every page
shares (tenancy scope, the audit call, headers), `actions` the one confirm → act → audit →
commit → redirect helper every action goes through, and `forms` the parsing of requests.
"""

from flask import Blueprint

from app.extensions import login_manager

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")


@bp.record_once
def _setup(state) -> None:
    login_manager.login_view = "dashboard.login"
    login_manager.login_message = "Please log in to see the dashboard."
    login_manager.login_message_category = "info"


# Each module registers its routes on `bp` when imported.
from app.blueprints.dashboard import (  # noqa: E402,F401
    audit_log,
    auth,
    conflicts,
    customers,
    deliveries,
    disputes,
    endpoints,
    events,
    modes,
    notifications,
    overview,
    payments,
    reconciliation,
    refunds,
    settings,
    shared,
    subscriptions,
)
