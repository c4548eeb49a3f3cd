"""Dashboard sessions end: a log-out, a password change and the idle and absolute timeouts end
every copy of the session cookie, server-side; the timeouts are settings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import DashboardSession, User, utcnow
from tests.support.factories import PASSWORD
from tests.support.pages import csrf_from, logged_in, login

DASHBOARD = "/dashboard/"


def _copy(client, app):
    """Another browser holding a copy of `client`'s session cookie (stolen, or synced)."""
    cookie = client.get_cookie(app.config.get("SESSION_COOKIE_NAME", "session"))
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie(cookie.key, cookie.value, domain=cookie.domain or "localhost")
    return thief


def _is_logged_out(response) -> bool:
    return response.status_code == 302 and "/dashboard/login" in response.headers["Location"]


def _sessions(app, email: str) -> list[DashboardSession]:
    with app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.email == email))
        return list(
            db.session.scalars(select(DashboardSession).where(DashboardSession.user_id == user_id))
        )


def _age(app, email: str, **moved_back: timedelta) -> None:
    """Move the user's sessions' timestamps into the past (instead of waiting)."""
    with app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.email == email))
        db.session.execute(
            update(DashboardSession)
            .where(DashboardSession.user_id == user_id)
            .values({column: utcnow() - delta for column, delta in moved_back.items()})
        )
        db.session.commit()


@pytest.fixture
def session_settings(app):
    saved = {
        k: app.config[k] for k in ("DASHBOARD_SESSION_IDLE_MINUTES", "DASHBOARD_SESSION_MAX_HOURS")
    }
    yield app.config
    app.config.update(saved)


def test_a_cookie_copied_before_logout_is_refused_after_it(app, tenants):
    client = logged_in(app, tenants.a_email)
    thief = _copy(client, app)
    assert thief.get(DASHBOARD).status_code == 200  # the copy works while the session lives

    token = csrf_from(client.get(DASHBOARD).get_data(as_text=True))
    assert client.post("/dashboard/logout", data={"csrf_token": token}).status_code == 302

    assert _is_logged_out(thief.get(DASHBOARD))
    assert _is_logged_out(client.get(DASHBOARD))
    [ended] = _sessions(app, tenants.a_email)
    assert ended.ended_reason == "logout" and ended.ended_at is not None


def test_the_server_keeps_only_a_hash_of_the_cookies_token(app, tenants):
    client = logged_in(app, tenants.a_email)
    with client.session_transaction() as cookie_session:
        token = cookie_session["dashboard_session"]
    [row] = _sessions(app, tenants.a_email)
    assert row.token_hash == DashboardSession.hash_token(token) and token not in row.token_hash


def test_a_password_change_ends_every_session_of_the_user(app, runner, tenants):
    first = logged_in(app, tenants.a_email)
    second = logged_in(app, tenants.a_email)  # another browser
    thief = _copy(first, app)
    other_user = logged_in(app, tenants.b_email)

    result = runner.invoke(
        args=["users", "set-password", tenants.a_email],
        env={"PAYBRIDGE_USER_PASSWORD": "a brand new passphrase"},
    )
    assert result.exit_code == 0, result.output
    assert "2 open session(s) ended" in result.output

    for client in (first, second, thief):
        assert _is_logged_out(client.get(DASHBOARD))
    assert other_user.get(DASHBOARD).status_code == 200  # nobody else's
    assert {s.ended_reason for s in _sessions(app, tenants.a_email)} == {"password_change"}
    fresh = app.test_client()
    assert login(fresh, tenants.a_email, PASSWORD).status_code == 401
    assert login(fresh, tenants.a_email, "a brand new passphrase").status_code == 302


def test_changing_ones_password_in_the_dashboard_ends_every_other_copy(app, tenants):
    client = logged_in(app, tenants.a_email)
    other_browser = logged_in(app, tenants.a_email)
    thief = _copy(client, app)
    token = csrf_from(client.get("/dashboard/account/password").get_data(as_text=True))

    wrong = client.post(
        "/dashboard/account/password",
        data={"csrf_token": token, "current": "not it", "new": "x" * 12, "repeat": "x" * 12},
    )
    assert wrong.status_code == 400
    assert "That is not your current password." in wrong.get_data(as_text=True)
    assert thief.get(DASHBOARD).status_code == 200  # nothing changed yet

    new = "a brand new passphrase"
    changed = client.post(
        "/dashboard/account/password",
        data={"csrf_token": token, "current": PASSWORD, "new": new, "repeat": new},
    )
    assert changed.status_code == 302

    assert client.get(DASHBOARD).status_code == 200  # the changer goes on, in a new session
    assert _is_logged_out(thief.get(DASHBOARD))
    assert _is_logged_out(other_browser.get(DASHBOARD))
    reasons = sorted(str(s.ended_reason) for s in _sessions(app, tenants.a_email))
    assert reasons == ["None", "password_change", "password_change"]
    assert login(app.test_client(), tenants.a_email, new).status_code == 302


def test_set_password_refuses_a_short_password_and_an_unknown_user(runner, tenants):
    short = runner.invoke(args=["users", "set-password", tenants.a_email, "--password", "short"])
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    nobody = runner.invoke(
        args=["users", "set-password", "nobody@shop-a.example", "--password", "long enough pw"]
    )
    assert nobody.exit_code == 1 and "no dashboard user" in nobody.output


def test_an_idle_session_ends_for_every_copy(app, tenants, session_settings):
    client = logged_in(app, tenants.a_email)
    thief = _copy(client, app)
    idle = timedelta(minutes=session_settings["DASHBOARD_SESSION_IDLE_MINUTES"])

    _age(app, tenants.a_email, last_seen_at=idle - timedelta(minutes=5))
    assert client.get(DASHBOARD).status_code == 200  # used in time: it lives on, marked used
    [row] = _sessions(app, tenants.a_email)
    assert utcnow() - row.last_seen_at < idle / 2

    _age(app, tenants.a_email, last_seen_at=idle + timedelta(minutes=1))
    assert _is_logged_out(thief.get(DASHBOARD))
    assert _is_logged_out(client.get(DASHBOARD))  # the first look ended it for both
    [row] = _sessions(app, tenants.a_email)
    assert row.ended_reason == "idle"


def test_the_idle_timeout_is_a_setting(app, tenants, session_settings):
    client = logged_in(app, tenants.a_email)
    _age(app, tenants.a_email, last_seen_at=timedelta(minutes=3))
    session_settings["DASHBOARD_SESSION_IDLE_MINUTES"] = 2

    assert _is_logged_out(client.get(DASHBOARD))


def test_a_session_ends_at_its_absolute_lifetime_however_busy(app, tenants, session_settings):
    client = logged_in(app, tenants.a_email)
    hours = session_settings["DASHBOARD_SESSION_MAX_HOURS"]
    _age(app, tenants.a_email, created_at=timedelta(hours=hours, minutes=1))

    assert _is_logged_out(client.get(DASHBOARD))
    [row] = _sessions(app, tenants.a_email)
    assert row.ended_reason == "expired"


def test_the_defaults_are_short(app):
    from app.config import Config

    assert Config.model_fields["DASHBOARD_SESSION_IDLE_MINUTES"].default == 30
    assert Config.model_fields["DASHBOARD_SESSION_MAX_HOURS"].default == 12
