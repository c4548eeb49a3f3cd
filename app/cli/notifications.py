"""`flask notifications list|resend|deliver|listen`: see and act on the outbox; forward a
merchant's events to a developer's machine."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from app.errors import PayBridgeError
from app.extensions import db
from app.models import Notification, Payment
from app.notifications.delivery import deliver_due
from app.notifications.redelivery import redeliver
from paybridge_listen import default_secret_path, listen, parse_since, signing_secret

notifications_cli = AppGroup("notifications", help="Notifications to client apps (the outbox).")

STATUSES = (
    Notification.STATUS_PENDING,
    Notification.STATUS_DELIVERED,
    Notification.STATUS_FAILED,
    Notification.STATUS_UNROUTED,
)


def register(app: Flask) -> None:
    app.cli.add_command(notifications_cli)


@notifications_cli.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only notifications in this status.")
@click.option("--merchant-id", type=int, help="Only this merchant's notifications.")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
def list_command(status: str | None, merchant_id: int | None, limit: int) -> None:
    """List notifications, newest first."""
    stmt = (
        select(Notification, Payment.public_id)
        .outerjoin(Payment, Payment.id == Notification.payment_id)
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    if status:
        stmt = stmt.where(Notification.status == status)
    if merchant_id:
        stmt = stmt.where(Notification.merchant_id == merchant_id)
    rows = db.session.execute(stmt).all()
    if not rows:
        click.echo("No notifications.")
        return
    click.echo(
        f"{'ID':>6}  {'WEBHOOK-ID':<28}  {'STATUS':<9}  {'TYPE':<18}  {'PAYMENT':<28}  "
        f"{'TRIES':>5}  {'NEXT ATTEMPT (UTC)':<19}  LAST ERROR"
    )
    for n, payment_public_id in rows:
        next_at = n.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S") if n.next_attempt_at else "-"
        click.echo(
            f"{n.id:>6}  {n.public_id:<28}  {n.status:<9}  {n.event_type:<18}  "
            f"{payment_public_id or '-':<28}  {n.attempt_count:>5}  {next_at:<19}  "
            f"{n.last_error or ''}"
        )


@notifications_cli.command("resend")
@click.argument("notification", required=False)
@click.option("--all-failed", is_flag=True, help="Resend every failed notification.")
def resend_command(notification: str | None, all_failed: bool) -> None:
    """Send a delivered or failed notification again (same webhook-id), by id or msg_… id."""
    if bool(notification) == all_failed:
        raise click.UsageError("Give a notification id or --all-failed (one of them).")
    if not all_failed:
        try:
            public_id = redeliver(_resolve(notification)).public_id
            db.session.commit()  # due from this commit on: the next delivery cycle sends it
        except PayBridgeError as exc:
            db.session.rollback()
            raise click.ClickException(exc.message) from exc
        click.echo(f"Queued {public_id} for delivery.")
        return
    queued = refused = 0
    for notification_id in _failed_ids():
        try:
            public_id = redeliver(notification_id).public_id
            db.session.commit()
        except PayBridgeError as exc:
            db.session.rollback()
            refused += 1
            click.echo(f"Skipped notification {notification_id}: {exc.message}", err=True)
            continue
        queued += 1
        click.echo(f"Queued {public_id} for delivery.")
    click.echo(
        f"{queued} failed notification(s) queued again"
        + (f", {refused} skipped." if refused else ".")
    )
    if refused:
        raise SystemExit(1)


def _failed_ids(batch: int = 500):
    """Every failed notification's id, read a batch at a time (never all at once)."""
    after = 0
    while ids := db.session.scalars(
        select(Notification.id)
        .where(Notification.status == Notification.STATUS_FAILED, Notification.id > after)
        .order_by(Notification.id)
        .limit(batch)
    ).all():
        yield from ids
        after = ids[-1]


@notifications_cli.command("deliver")
@click.option("--all", "drain", is_flag=True, help="Repeat until nothing is due.")
def deliver_command(drain: bool) -> None:
    """Deliver due notifications now, in this process (what the worker's pump does)."""
    total = deliver_due()
    while drain and total:
        sent = deliver_due()
        if not sent:
            break
        total += sent
    click.echo(f"Made {total} delivery attempt(s).")


def _resolve(value: str) -> int:
    if value.isdigit():
        return int(value)
    found = db.session.scalar(select(Notification.id).where(Notification.public_id == value))
    if found is None:
        raise click.ClickException(f"No notification {value}.")
    return found


@notifications_cli.command("listen")
@click.option(
    "--api-key",
    envvar="PAYBRIDGE_API_KEY",
    required=True,
    help="The merchant's API key (pbk_test_… or pbk_live_…); default $PAYBRIDGE_API_KEY.",
)
@click.option("--forward-to", required=True, help="The local URL to POST each event to.")
@click.option("--api-base", help="Where PayBridge's API is; default PUBLIC_BASE_URL.")
@click.option(
    "--types", help="Only these event types: payment.succeeded, payment.*, or comma-separated."
)
@click.option(
    "--since", help="Also forward the events since then: ISO 8601, or back from now (15m, 2h)."
)
@click.option("--secret", help="Sign with this whsec_… secret instead of this machine's own.")
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=default_secret_path,
    show_default="~/.config/paybridge/listen-secret",
    help="Where this machine's secret is kept (made on the first run).",
)
@click.option("--retries", type=click.IntRange(0, 10), default=3, show_default=True)
@click.option("--interval", type=click.FloatRange(0.1, 60), default=2.0, show_default=True)
def listen_command(
    api_key: str,
    forward_to: str,
    api_base: str | None,
    types: str | None,
    since: str | None,
    secret: str | None,
    secret_file: Path,
    retries: int,
    interval: float,
) -> None:
    """Forward a merchant's events to a local URL, signed, like `stripe listen` (through the
    Events API: PayBridge needs no way to reach this machine). Same as `python -m
    paybridge_listen`; docs/notifications.md."""
    try:
        signing = signing_secret(secret, secret_file)
        start = parse_since(since) if since else None
    except (ValueError, OSError) as error:
        raise click.UsageError(str(error)) from None
    code = listen(
        api_key=api_key,
        forward_to=forward_to,
        api_base=api_base or current_app.config["PUBLIC_BASE_URL"],
        types=types,
        since=start,
        secret=signing,
        secret_origin="--secret" if secret else str(secret_file),
        retries=retries,
        interval=interval,
        say=lambda line: click.echo(line),
    )
    if code:
        raise SystemExit(code)
