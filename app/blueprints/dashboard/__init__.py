"""The merchant dashboard: server-rendered pages behind Flask-Login, under /dashboard."""

from flask import Blueprint

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")


@bp.record_once
def _setup(state) -> None:
    from app.dashboard.audit import protect_audit_log
    from app.dashboard.cli import users_cli
    from app.extensions import login_manager

    login_manager.login_view = "dashboard.login"
    login_manager.login_message = "Please log in to see the dashboard."
    login_manager.login_message_category = "info"
    state.app.cli.add_command(users_cli)
    protect_audit_log()


from app.blueprints.dashboard import routes  # noqa: E402,F401
