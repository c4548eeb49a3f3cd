"""`flask retention purge [--dry-run]`: delete what is past its age now (app/retention/)."""

from __future__ import annotations

import sys
import time

import click
from flask import Flask
from flask.cli import AppGroup

from app.retention.service import KINDS, purge

retention_cli = AppGroup("retention", help="Purge records past their retention age.")


def register(app: Flask) -> None:
    app.cli.add_command(retention_cli)


@retention_cli.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would be purged; delete nothing.")
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=1),
    help="Start no batch after this long (default: until everything past its age is gone).",
)
def purge_command(dry_run: bool, max_seconds: float | None) -> None:
    """Purge old idempotency records, delivered notifications, test events, PSP events and
    recon runs."""
    started = time.monotonic()
    report = purge(dry_run=dry_run, max_seconds=max_seconds)
    seconds = time.monotonic() - started
    if report.skipped:
        click.echo("Another purge is running (it holds the retention lock); nothing done.")
        sys.exit(1)
    click.echo(f"{'TABLE':<28} {'KEPT FOR':<10} {'WOULD PURGE' if dry_run else 'PURGED':>12}")
    for kind in KINDS:
        kept_for = report.kept_for.get(kind.table, "-")
        lines = [(kind.table, kept_for)] + [(fk.table.name, "(with it)") for fk in kind.children]
        for table, kept in lines:
            rows = report.rows.get(table)
            shown = "-" if rows is None else f"{rows:,}"
            click.echo(f"{table:<28} {kept:<10} {shown:>12}")
    total = sum(report.rows.values())
    click.echo(f"{'Would purge' if dry_run else 'Purged'} {total:,} rows in {seconds:.1f} s.")
    if not report.finished:
        click.echo("Stopped at --max-seconds; run it again to continue.")
