"""`flask notifications list|resend|deliver`: see and act on the outbox."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from app.errors import PayBridgeError
from app.extensions import db
from app.models import Notification, Payment
from app.notifications.delivery import deliver_due, resend

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
    if all_failed:
        ids = db.session.scalars(
            select(Notification.id)
            .where(Notification.status == Notification.STATUS_FAILED)
            .order_by(Notification.id)
        ).all()
    else:
        ids = [_resolve(notification)]
    for notification_id in ids:
        try:
            n = resend(notification_id)
            public_id = n.public_id
            db.session.commit()  # due from this commit on: the next delivery cycle sends it
        except PayBridgeError as exc:
            db.session.rollback()
            raise click.ClickException(exc.message) from exc
        click.echo(f"Queued {public_id} for delivery.")
    if all_failed:
        click.echo(f"{len(ids)} failed notification(s) queued again.")


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
