"""Dashboard passwords are held to one policy however they are set: `flask users create` and
`set-password` (by --password, PAYBRIDGE_USER_PASSWORD or the prompt) and the dashboard's own
password change all go through the account service, which refuses scripts/demo.sh's published
logins (config.DEMO_PASSWORDS) outside the demo and the suite, and any password zxcvbn scores
below 3, in every environment (app/accounts/passwords.py). Before, production's settings check
caught a demo password only in PAYBRIDGE_USER_PASSWORD, and the service checked only length.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.config import DEMO_PASSWORDS
from app.extensions import db
from app.models import User
from tests.support.factories import PASSWORD
from tests.support.pages import login, token_for

WEAK = ["xxxxxxxxxxxx", "Password123!", "abcdefghij", "qwertyuiop", "1234567890"]
GOOD = "tangerine orbit lanyard"


def _user(app, email: str) -> User | None:
    with app.app_context():
        return db.session.scalar(select(User).where(User.email == email))


@pytest.mark.parametrize("password", sorted(DEMO_PASSWORDS))
def test_production_refuses_a_demo_password_by_flag_and_by_prompt(production_app, password):
    runner = production_app.test_cli_runner()
    by_flag = runner.invoke(
        args=["users", "create", "ops@paybridge.example", "--operator", "--password", password]
    )
    assert by_flag.exit_code == 1, by_flag.output
    assert "one of the demo's published passwords" in by_flag.output
    by_prompt = runner.invoke(
        args=["users", "create", "ops@paybridge.example", "--operator"],
        input=f"{password}\n{password}\n",
    )
    assert by_prompt.exit_code == 1, by_prompt.output
    assert "one of the demo's published passwords" in by_prompt.output
    assert _user(production_app, "ops@paybridge.example") is None


def test_production_refuses_a_demo_password_for_an_existing_user(production_app, tenants):
    runner = production_app.test_cli_runner()
    result = runner.invoke(
        args=["users", "set-password", tenants.a_email, "--password", "demo-password"]
    )
    assert result.exit_code == 1 and "demo's published passwords" in result.output
    assert _user(production_app, tenants.a_email).check_password(PASSWORD)


def test_the_demo_and_the_suite_may_use_the_demo_passwords(app, runner):
    """scripts/demo.sh creates its logins with them (and so does the e2e shop test)."""
    result = runner.invoke(
        args=["users", "create", "demo@paybridge.example", "--operator"],
        env={"PAYBRIDGE_USER_PASSWORD": "demo-password"},
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("password", WEAK)
def test_a_weak_password_is_refused_in_every_environment(app, runner, tenants, password):
    created = runner.invoke(
        args=["users", "create", "weak@paybridge.example", "--operator", "--password", password]
    )
    assert created.exit_code == 1 and "too easy to guess" in created.output, created.output
    changed = runner.invoke(
        args=["users", "set-password", tenants.a_email], input=f"{password}\n" * 2
    )
    assert changed.exit_code == 1 and "too easy to guess" in changed.output, changed.output
    assert _user(app, "weak@paybridge.example") is None
    assert _user(app, tenants.a_email).check_password(PASSWORD)


def test_a_password_made_of_the_users_own_address_is_refused(app, runner):
    result = runner.invoke(
        args=["users", "create", "marigold.finance@shop-a.example", "--operator",
              "--password", "marigold.finance"],
    )  # fmt: skip
    assert result.exit_code == 1 and "too easy to guess" in result.output, result.output


def test_a_strong_password_is_accepted(app, runner):
    result = runner.invoke(
        args=["users", "create", "ok@paybridge.example", "--operator", "--password", GOOD]
    )
    assert result.exit_code == 0, result.output
    assert _user(app, "ok@paybridge.example").check_password(GOOD)


def _change(client, new: str):
    token = token_for(client, "/dashboard/account/password")
    return client.post(
        "/dashboard/account/password",
        data={"csrf_token": token, "current": PASSWORD, "new": new, "repeat": new},
    )


@pytest.mark.parametrize("new", ["demo-password", "Password123!"])
def test_the_dashboard_password_change_refuses_demo_and_weak_passwords(
    app, client_a, tenants, monkeypatch, new
):
    monkeypatch.setitem(app.config, "DEMO_PASSWORDS_ALLOWED", False)  # as in production
    answer = _change(client_a, new)
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    assert "demo&#39;s published passwords" in page or "too easy to guess" in page, page
    assert _user(app, tenants.a_email).check_password(PASSWORD)
    assert client_a.get("/dashboard/").status_code == 200  # still logged in: nothing changed

    fresh = app.test_client()
    assert login(fresh, tenants.a_email, new).status_code == 401
    assert _change(client_a, GOOD).status_code == 302
