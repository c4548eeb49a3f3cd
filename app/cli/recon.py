"""`flask recon run|runs`: reconcile payments with the PSP now, and see past runs."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from app.errors import PayBridgeError
from app.extensions import db
from app.models import Payment, ReconciliationRun
from app.reconciliation.service import reconcile_payment, run_reconciliation, summarize

recon_cli = AppGroup("recon", help="Reconciliation with the PSP.")


def register(app: Flask) -> None:
    app.cli.add_command(recon_cli)


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


@recon_cli.command("run")
@click.option("--dry-run", is_flag=True, help="Only read from the PSP; report what would change.")
@click.option("--payment", "payment_ref", metavar="pay_…", help="Check this one payment now.")
def run_command(dry_run: bool, payment_ref: str | None) -> None:
    """Run reconciliation now (or for one payment) and print what it found."""
    if payment_ref:
        payment = db.session.execute(
            select(Payment).where(Payment.public_id == payment_ref.strip())
        ).scalar_one_or_none()
        if payment is None:
            raise click.ClickException(f"no payment {payment_ref!r}")
        try:
            result = reconcile_payment(payment.id, trigger="cli", dry_run=dry_run)
        except PayBridgeError as exc:
            raise click.ClickException(exc.message) from exc
        _print_entries([result], dry_run)
        click.echo(f"status now: {result['status']}" + (" (dry run)" if dry_run else ""))
        if result.get("error"):
            sys.exit(1)
        return

    run = run_reconciliation(trigger="cli", dry_run=dry_run)
    entries = [d for d in (run.details or []) if d.get("action") != "summary"]
    if entries:
        _print_entries(entries, dry_run)
    summary = summarize(run.details)
    click.echo("")
    rows = [
        ("run", f"{run.id}{' (dry run)' if run.dry_run else ''}"),
        ("status", run.status),
        ("started / finished (UTC)", f"{_when(run.started_at)} / {_when(run.finished_at)}"),
        ("checked", run.checked),
        ("would correct" if dry_run else "corrected", run.corrected),
        ("still open", run.still_open),
        ("errors", run.errors),
        ("missed events caught up", summary.get("events_caught_up", 0)),
        ("PSP sessions listed", summary.get("sessions_listed", 0)),
        ("sessions without payment", summary.get("unknown_sessions", 0)),
        ("PSP calls (429s)", f"{summary.get('psp_calls', 0)} ({summary.get('rate_limited', 0)})"),
    ]
    for label, value in rows:
        click.echo(f"{label:<26} {value}")
    if run.error_text:
        click.echo(f"{'note':<26} {run.error_text}")
    if run.status == ReconciliationRun.STATUS_FAILED:
        sys.exit(1)


def _print_entries(entries: list[dict], dry_run: bool) -> None:
    click.echo(f"{'PAYMENT':<30} {'FROM':<9} {'TO':<9} {'ACTION':<22} WHY")
    for e in entries:
        why = e.get("error") or e.get("why") or ""
        click.echo(
            f"{e.get('payment') or '-':<30} {e.get('from') or '-':<9} {e.get('to') or '-':<9} "
            f"{e.get('action') or '-':<22} {why}"
        )


@recon_cli.command("runs")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
def runs_command(limit: int) -> None:
    """List recent reconciliation runs, newest first."""
    runs = db.session.execute(
        select(ReconciliationRun).order_by(ReconciliationRun.id.desc()).limit(limit)
    ).scalars()
    rows = list(runs)
    if not rows:
        click.echo("No reconciliation runs yet.")
        return
    click.echo(
        f"{'ID':>6}  {'STARTED (UTC)':<19}  {'SECONDS':>7}  {'TRIGGER':<9}  {'STATUS':<9}  "
        f"{'DRY':<3}  {'CHECKED':>7}  {'CORRECTED':>9}  {'OPEN':>5}  {'ERRORS':>6}  "
        f"{'SESSIONS COMPARED TO':<20}  NOTE"
    )
    for r in rows:
        seconds = f"{(r.finished_at - r.started_at).total_seconds():.1f}" if r.finished_at else "-"
        click.echo(
            f"{r.id:>6}  {_when(r.started_at):<19}  {seconds:>7}  {r.trigger:<9}  {r.status:<9}  "
            f"{'yes' if r.dry_run else 'no':<3}  {r.checked:>7}  {r.corrected:>9}  "
            f"{r.still_open:>5}  {r.errors:>6}  {_when(r.sessions_compared_until):<20}  "
            f"{r.error_text or ''}"
        )
