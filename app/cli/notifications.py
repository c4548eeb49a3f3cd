"""`flask notifications list|resend|deliver|listen`: see and act on the outbox; forward a
merchant's events to a developer's machine."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from app.errors import PayBridgeError
from app.extensions import db
from app.models import Notification, NotificationDelivery, NotificationEndpoint, Payment
from app.notifications.delivery import deliver_due
from app.notifications.redelivery import FailedWindow, count_failed, redeliver, redeliver_failed
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
@click.option(
    "--all-failed",
    is_flag=True,
    help="Resend every failed delivery, each to its own endpoint only.",
)
@click.option("--endpoint", help="With --all-failed: only this endpoint's (we_…).")
@click.option(
    "--since", help="With --all-failed: events created since then (ISO 8601, or 15m, 2h, 3d back)."
)
@click.option(
    "--until", help="With --all-failed: events created until then (ISO 8601, or 15m, 2h, 3d back)."
)
def resend_command(
    notification: str | None,
    all_failed: bool,
    endpoint: str | None,
    since: str | None,
    until: str | None,
) -> None:
    """Send a delivered or failed notification again (same webhook-id), by id or msg_… id, to
    every endpoint that receives it; or, with --all-failed, every failed delivery again to its
    endpoint only (an endpoint that got the notification gets no copy)."""
    if bool(notification) == all_failed:
        raise click.UsageError("Give a notification id or --all-failed (one of them).")
    if not all_failed:
        if endpoint or since or until:
            raise click.UsageError("--endpoint, --since and --until go with --all-failed.")
        try:
            public_id = redeliver(_resolve(notification)).public_id
            db.session.commit()  # due from this commit on: the next delivery cycle sends it
        except PayBridgeError as exc:
            db.session.rollback()
            raise click.ClickException(exc.message) from exc
        click.echo(f"Queued {public_id} for delivery.")
        return
    try:
        created_gte = _moment(since, "--since")
        created_lte = _moment(until, "--until")
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    queued = skipped = 0
    for target in _endpoints_with_failed(endpoint):
        # Counted first, and only those sent: what fails while this runs waits for the next.
        window = FailedWindow(target.id, created_gte, created_lte)
        count, newest = count_failed(window)
        if not count:
            continue
        reason = _not_sendable(target)
        if reason:
            skipped += count
            click.echo(f"Skipped {count} failed deliveries to {target.public_id} ({reason}).")
            continue
        try:
            sent = redeliver_failed(target, replace(window, upto_id=newest))
        except PayBridgeError as exc:  # disabled since it was read
            db.session.rollback()
            skipped += count
            click.echo(f"Skipped {count} failed deliveries to {target.public_id}: {exc.message}")
            continue
        queued += sent
        click.echo(f"Queued {sent} failed deliveries to {target.public_id} ({target.url}).")
    click.echo(
        f"{queued} failed deliveries queued again"
        + (f"; {skipped} skipped (their endpoint is disabled or deleted)." if skipped else ".")
    )


def _moment(value: str | None, option: str) -> datetime | None:
    """An option's time as the database keeps it (naive UTC), or None."""
    if not value:
        return None
    try:
        moment = parse_since(value)
    except ValueError as error:  # its message names --since
        raise ValueError(str(error).replace("--since", option, 1)) from None
    return moment.astimezone(UTC).replace(tzinfo=None)


def _endpoints_with_failed(public_id: str | None) -> list[NotificationEndpoint]:
    """The endpoints (or the one named) with failed deliveries, deleted and disabled ones too
    (so their deliveries are reported, not silently left)."""
    stmt = select(NotificationEndpoint).order_by(NotificationEndpoint.id)
    if public_id:
        found = db.session.scalars(stmt.where(NotificationEndpoint.public_id == public_id)).all()
        if not found:
            raise click.ClickException(f"No notification endpoint {public_id}.")
        return list(found)
    failed = select(NotificationDelivery.endpoint_id).where(
        NotificationDelivery.status == NotificationDelivery.STATUS_FAILED
    )
    return list(db.session.scalars(stmt.where(NotificationEndpoint.id.in_(failed))))


def _not_sendable(endpoint: NotificationEndpoint) -> str | None:
    if endpoint.deleted_at is not None:
        return "deleted"
    if not endpoint.enabled:
        return f"disabled: {endpoint.disabled_reason}" if endpoint.disabled_reason else "disabled"
    return None


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
