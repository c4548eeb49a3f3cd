"""The merchant dashboard: server-rendered pages behind Flask-Login, under /dashboard."""

from flask import Blueprint

from app.extensions import login_manager

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")


@bp.record_once
def _setup(state) -> None:
    login_manager.login_view = "dashboard.login"
    login_manager.login_message = "Please log in to see the dashboard."
    login_manager.login_message_category = "info"


from app.blueprints.dashboard import routes, subscriptions  # noqa: E402,F401
