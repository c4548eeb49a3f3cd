"""`flask users create` takes only a valid email address: no markup, no quoted local parts, no
host without a domain; what it stores is the normalized, lower-case address."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import User

PASSWORD_ENV = {"PAYBRIDGE_USER_PASSWORD": "a long enough password"}


@pytest.mark.parametrize(
    "email",
    [
        "<script>alert(1)</script>@shop.example",
        "<script>@shop.example",
        '"<script>alert(1)</script>"@shop.example',
        "alice@<script>.example",
        "alice@shop.example<script>",
        "alice@localhost",
        "alice",
        "alice@",
        "@shop.example",
        "alice@@shop.example",
        "al ice@shop.example",
        "alice@shop..example",
        "a" * 250 + "@shop.example",
    ],
)
def test_an_invalid_email_is_refused_with_a_clear_message(app, runner, email):
    result = runner.invoke(args=["users", "create", email, "--operator"], env=PASSWORD_ENV)

    assert result.exit_code == 1, result.output
    assert "is not a valid email address" in result.output
    with app.app_context():
        assert db.session.scalars(select(User)).all() == []


def test_a_valid_email_is_stored_normalized(app, runner):
    result = runner.invoke(
        args=["users", "create", "  Ops.Team+pb@PayBridge.Example ", "--operator"],
        env=PASSWORD_ENV,
    )

    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalars(select(User.email)).all() == ["ops.team+pb@paybridge.example"]
