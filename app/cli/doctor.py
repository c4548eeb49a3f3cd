"""`flask doctor`: is the database server one PayBridge can run on, with room for its
connections? The Procfile's release runs it before migrating."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.runtime.database_server import (
    SUPPORTED,
    assess,
    connection_budget,
    parse_server_version,
)


def register(app: Flask) -> None:
    app.cli.add_command(doctor_command)


@click.command("doctor")
@with_appcontext
def doctor_command() -> None:
    """Check the database server: a version PayBridge supports (exit 1 if not), and a
    max_connections above the connections this deployment may open (a warning if not)."""
    if db.engine.dialect.name == "sqlite":
        click.echo("database: SQLite, the demo's embedded database: nothing to check")
        return
    try:
        with db.engine.connect() as connection:
            version_text, max_connections, max_user_connections = connection.execute(
                text("SELECT VERSION(), @@max_connections, @@max_user_connections")
            ).one()
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        raise click.ClickException(f"cannot ask the database server: {reason}") from None
    try:
        version = parse_server_version(version_text)
    except ValueError as exc:
        raise click.ClickException(f"{exc}; PayBridge needs {SUPPORTED}") from None
    budget = connection_budget(current_app.config)
    found = assess(version, budget, int(max_connections), int(max_user_connections))
    click.echo(f"database: {version} ({version_text})")
    click.echo(f"connections: PayBridge may open {budget}; the server allows {max_connections}")
    for warning in found.warnings:
        click.echo(f"warning: {warning}", err=True)
    if found.refusals:
        raise click.ClickException("\n".join(found.refusals))
    click.echo(f"ok: {SUPPORTED} needed, found {version}")
