"""`flask reporting rebuild [--merchant ID] [--since DATE]`: recompute the overview's payment
rollup from the payments (app/reporting/rollup.py): after the deploy that adds it, or to repair."""

from __future__ import annotations

import sys
import time
from datetime import datetime

import click
from flask import Flask
from flask.cli import AppGroup

from app.extensions import db
from app.models import Merchant
from app.reporting.rollup import rebuild

reporting_cli = AppGroup("reporting", help="The overview's payment rollup.")


def register(app: Flask) -> None:
    app.cli.add_command(reporting_cli)


@reporting_cli.command("rebuild")
@click.option("--merchant", "merchant_id", type=int, help="Only this merchant's payments (its id).")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M"]),
    help="Only payments created from this UTC date or time (default: the first payment).",
)
def rebuild_command(merchant_id: int | None, since: datetime | None) -> None:
    """Recompute the rollup's buckets from the payments, a day's worth at a time (each its own
    short transaction: the overview and the payments go on meanwhile)."""
    if merchant_id is not None and db.session.get(Merchant, merchant_id) is None:
        click.echo(f"No merchant with id {merchant_id}.", err=True)
        sys.exit(2)
    started = time.monotonic()
    report = rebuild(merchant_id=merchant_id, since=since)
    if report.skipped:
        click.echo("Another rollup run holds the lock; nothing done. Try again in a minute.")
        sys.exit(1)
    click.echo(
        f"Recomputed {report.buckets:,} buckets ({report.rows:,} rows) "
        f"in {time.monotonic() - started:.1f} s."
    )
