"""`flask seed-demo`: the demo merchant, the shop's products and the dashboard logins."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from app.extensions import db


@click.command("seed-demo")
@with_appcontext
@click.option(
    "--public-base-url",
    default=None,
    help="Where the shop is reachable (its notify URL is built from it); "
    "defaults to PUBLIC_BASE_URL.",
)
def seed_demo_command(public_base_url: str | None) -> None:
    """Create the demo shop's merchant, products and dashboard logins (safe to run again)."""
    from app.shop.seed import seed_demo

    base_url = public_base_url or current_app.config["PUBLIC_BASE_URL"]
    report = seed_demo(base_url)
    db.session.commit()
    for line in report.lines:
        click.echo(line)
    if report.api_key:
        click.echo("")
        click.echo(f"API key of the demo merchant (shown once, store it now): {report.api_key}")


def register(app: Flask) -> None:
    app.cli.add_command(seed_demo_command)
