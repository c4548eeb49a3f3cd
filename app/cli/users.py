"""`flask users …`: dashboard accounts for merchants and operators."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from app.accounts.service import create_user, find_user_by_email, set_password
from app.errors import PayBridgeError
from app.extensions import db

users_cli = AppGroup("users", help="Dashboard users.")


@users_cli.command("create")
@click.argument("email")
@click.option("--merchant-id", type=int, default=None, help="The merchant this user belongs to.")
@click.option("--operator", is_flag=True, help="An operator sees every merchant.")
@click.password_option(
    "--password",
    envvar="PAYBRIDGE_USER_PASSWORD",
    help="Prompted for when not given (or set PAYBRIDGE_USER_PASSWORD).",
)
def create_user_command(email: str, merchant_id: int | None, operator: bool, password: str) -> None:
    """Create a dashboard user (log in at /dashboard/login)."""
    try:
        user = create_user(email, password, merchant_id=merchant_id, operator=operator)
        db.session.commit()
    except PayBridgeError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    role = "operator" if user.is_operator else f"merchant {user.merchant_id}"
    click.echo(f"Created dashboard user {user.email} ({role}), id {user.id}.")


@users_cli.command("set-password")
@click.argument("email")
@click.password_option(
    "--password",
    envvar="PAYBRIDGE_USER_PASSWORD",
    help="Prompted for when not given (or set PAYBRIDGE_USER_PASSWORD).",
)
def set_password_command(email: str, password: str) -> None:
    """Give a dashboard user a new password; every session they have open ends."""
    user = find_user_by_email(email)
    if user is None:
        raise click.ClickException(f"no dashboard user {email.strip().lower()!r}")
    try:
        ended = set_password(user, password)
        db.session.commit()
    except PayBridgeError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    click.echo(f"New password set for {user.email}; {ended} open session(s) ended.")


def register(app: Flask) -> None:
    app.cli.add_command(users_cli)
