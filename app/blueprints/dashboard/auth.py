"""Log-in and log-out, and how Flask-Login finds the logged-in user: through the server-side
session the cookie names (app/accounts/sessions.py), so that a log-out, a password change or a
timeout ends every copy of the cookie."""

from __future__ import annotations

from flask import (
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user

from app.accounts import service as accounts
from app.accounts import sessions
from app.blueprints.dashboard import bp
from app.blueprints.dashboard.actions import audited, form_page
from app.blueprints.dashboard.forms import ConfirmForm, LoginForm, PasswordChangeForm
from app.blueprints.dashboard.shared import audit_action, safe_next
from app.errors import PayBridgeError
from app.extensions import db, limiter, login_manager
from app.logging_setup import note_merchant
from app.models import User

# Where the cookie keeps the server-side session's token.
SESSION_TOKEN = "dashboard_session"


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The user whose open, unexpired server-side session this cookie names, else nobody."""
    try:
        wanted = int(user_id)
    except (TypeError, ValueError):
        return None
    lifetimes = sessions.Lifetimes.from_config(current_app.config)
    user = sessions.resume_session(session.get(SESSION_TOKEN), wanted, lifetimes)
    if user is not None:
        note_merchant(user.merchant_id)  # before the commit expires it (an operator: None)
    db.session.commit()  # the session's last use, or its end (nothing else is pending yet)
    if user is None:
        session.pop(SESSION_TOKEN, None)
    return user


def _login_rate_key() -> str:
    email = (request.form.get("email") or "").strip().lower()[:254]
    return f"dashboard-login:{request.remote_addr}:{email}"


def _login_failed(response: Response) -> bool:
    # Only failed attempts use up the allowance; a successful log-in redirects (302).
    return response.status_code != 302


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("5/minute", key_func=_login_rate_key, methods=["POST"], deduct_when=_login_failed)
@limiter.limit("30/minute", methods=["POST"], deduct_when=_login_failed)
def login():
    """Log a dashboard user in; wrong email and wrong password look the same."""
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.overview"))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    if not form.validate_on_submit():
        return form_page("dashboard/login.html", form=form)
    user, password_ok = accounts.check_login(form.email.data, form.password.data)
    if not password_ok:
        return _refuse(form, user)
    session.clear()  # a fresh session on log-in: nothing carried over from before
    session[SESSION_TOKEN] = sessions.start_session(user)
    login_user(user)
    accounts.record_login(user)
    audited("login", merchant_id=user.merchant_id, target=("user", user.id))
    return redirect(safe_next(form.next.data))


def _refuse(form: LoginForm, user: User | None) -> tuple[str, int]:
    """Audit a failed log-in (the user, when the email was right) and ask again."""
    email = form.email.data.strip().lower()[:254]
    merchant_id = user.merchant_id if user else None
    audit_action("login_failed", user=user, merchant_id=merchant_id, detail={"email": email})
    db.session.commit()
    form.password.errors.append("The email or the password is wrong.")
    return render_template("dashboard/login.html", form=form), 401


def _password_key() -> str:
    return f"dashboard-password:{current_user.get_id()}"


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
@limiter.limit("5/minute", key_func=_password_key, methods=["POST"], deduct_when=_login_failed)
def change_password():
    """Change one's own password: every session of the user ends, this browser gets a new one."""
    form = PasswordChangeForm()
    if not form.validate_on_submit():
        return form_page("dashboard/password.html", form=form)
    user = current_user._get_current_object()
    if not user.check_password(form.current.data):
        audit_action("password_change", user=user, merchant_id=user.merchant_id,
                     detail={"result": "error", "code": "WRONG_PASSWORD"})  # fmt: skip
        db.session.commit()
        form.current.errors.append("That is not your current password.")
        return render_template("dashboard/password.html", form=form), 400
    try:
        ended = accounts.set_password(user, form.new.data)
    except PayBridgeError as exc:  # a password the policy refuses (app/accounts/passwords.py)
        db.session.rollback()
        audit_action("password_change", user=user, merchant_id=user.merchant_id,
                     detail={"result": "error", "code": exc.code})  # fmt: skip
        db.session.commit()
        form.new.errors.append(exc.message)
        return render_template("dashboard/password.html", form=form), 400
    session.clear()
    session[SESSION_TOKEN] = sessions.start_session(user)
    login_user(user)
    audited(
        "password_change",
        merchant_id=user.merchant_id,
        target=("user", user.id),
        detail={"result": "ok", "sessions_ended": ended},
    )
    flash("Your password is changed; every other session of yours is logged out.", "success")
    return redirect(url_for("dashboard.overview"))


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Log out (POST with CSRF, so no other site can log a user out)."""
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired; please try again.")
    sessions.end_session(session.get(SESSION_TOKEN), "logout")
    audited("logout", merchant_id=current_user.merchant_id, target=("user", current_user.id))
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("dashboard.login"))
