"""`flask merchants …`: create merchants and manage their API keys (keys are shown once).

A key is of one Stripe mode, test (the default, as Stripe's dashboard starts in test mode) or
live (`--live`): the payments it makes are of that mode, and it sees only those."""

from __future__ import annotations

import json

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import or_, select

from app.common.urls import split_url
from app.errors import PayBridgeError
from app.extensions import db
from app.models import ApiKey, Merchant, iso, utcnow
from app.notifications import endpoints
from app.notifications.event_types import LEGACY_EVENT_TYPES

merchants = AppGroup("merchants", help="Merchants (client apps) and their API keys.")
keys = AppGroup("keys", help="A merchant's API keys.")
merchants.add_command(keys)


def _http_url(ctx, param, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parsed = split_url(value)
    except PayBridgeError as exc:
        raise click.BadParameter(exc.message) from None
    if parsed.scheme not in ("http", "https") or not parsed.netloc or len(value) > 2000:
        raise click.BadParameter("must be an http(s) URL of at most 2000 characters")
    return value


mode_option = click.option(
    "--live/--test",
    "livemode",
    default=False,
    help="The key's mode: --live makes real payments (pbk_live_…); default --test (pbk_test_…).",
)


def _merchant(merchant_id: int) -> Merchant:
    merchant = db.session.get(Merchant, merchant_id)
    if merchant is None:
        raise click.ClickException(f"no merchant with id {merchant_id}")
    return merchant


@merchants.command("create")
@click.argument("name")
@click.option(
    "--notify-url",
    callback=_http_url,
    help="Its first notification endpoint (in the key's mode), receiving payment.succeeded/"
    "failed, refund.* and dispute.*; add others in the dashboard or the API.",
)
@click.option("--key-name", default="default", show_default=True, help="Name of the first key.")
@mode_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
def create_merchant(
    name: str, notify_url: str | None, key_name: str, livemode: bool, as_json: bool
) -> None:
    """Create a merchant with an API key (test mode unless --live) and, with --notify-url, its
    first notification endpoint; prints the key and the endpoint's signing secret once."""
    name = name.strip()
    if not name or len(name) > 200:
        raise click.BadParameter("must be 1 to 200 characters", param_hint="NAME")
    merchant = Merchant(name=name)
    api_key, raw = ApiKey.generate(merchant, name=key_name, livemode=livemode)
    db.session.add_all([merchant, api_key])
    db.session.flush()
    endpoint = None
    if notify_url is not None:
        try:
            endpoint = endpoints.create_endpoint(
                merchant.id,
                livemode,
                url=notify_url,
                event_types=LEGACY_EVENT_TYPES,
                allowed_networks=current_app.config["NOTIFY_ALLOWED_NETWORKS"],
            )
        except PayBridgeError as exc:
            db.session.rollback()
            raise click.BadParameter(exc.message, param_hint="--notify-url") from None
    db.session.commit()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "merchant_id": merchant.id,
                    "name": merchant.name,
                    "notify_url": endpoint.url if endpoint else None,
                    "notification_endpoint_id": endpoint.public_id if endpoint else None,
                    "api_key": raw,
                    "api_key_prefix": api_key.prefix,
                    "livemode": api_key.livemode,
                    "signing_secret": endpoint.signing_secret if endpoint else None,
                }
            )
        )
        return
    click.echo(f"Merchant {merchant.id} created: {merchant.name}")
    click.echo(f"Notify URL:     {endpoint.url if endpoint else '(none)'}")
    click.echo(f"API key:        {raw} ({_mode(api_key.livemode)})")
    if endpoint is not None:
        click.echo(f"Signing secret: {endpoint.signing_secret} (endpoint {endpoint.public_id})")
        click.echo("Store both now: the key is not shown again.")
    else:
        click.echo("Store the key now: it is not shown again.")


@merchants.command("list")
def list_merchants() -> None:
    """Every merchant with its active key count."""
    rows = db.session.execute(select(Merchant).order_by(Merchant.id)).scalars().all()
    if not rows:
        click.echo("No merchants yet: flask merchants create NAME --notify-url URL")
        return
    click.echo(f"{'ID':>5}  {'NAME':<30} {'KEYS':>4}  ENDPOINTS (test, live)")
    for merchant in rows:
        active = sum(1 for k in merchant.api_keys if k.active)
        counts = [len(endpoints.of_merchant(merchant.id, livemode)) for livemode in (False, True)]
        click.echo(
            f"{merchant.id:>5}  {merchant.name[:30]:<30} {active:>4}  {counts[0]}, {counts[1]}"
        )


@keys.command("list")
@click.argument("merchant_id", type=int)
def list_keys(merchant_id: int) -> None:
    """A merchant's keys: id, mode, prefix, name, created, last used, revoked."""
    merchant = _merchant(merchant_id)
    click.echo(
        f"{'ID':>5}  {'MODE':<4}  {'PREFIX':<17} {'NAME':<20} {'CREATED':<28} {'LAST USED':<28} "
        "REVOKED"
    )
    for key in sorted(merchant.api_keys, key=lambda k: k.id):
        click.echo(
            f"{key.id:>5}  {_mode(key.livemode):<4}  {key.prefix:<17} {key.name[:20]:<20} "
            f"{iso(key.created_at):<28} {iso(key.last_used_at) or '-':<28} "
            f"{iso(key.revoked_at) or '-'}"
        )


@keys.command("create")
@click.argument("merchant_id", type=int)
@click.option("--name", default="default", show_default=True, help="A label for the key.")
@mode_option
def create_key(merchant_id: int, name: str, livemode: bool) -> None:
    """Add an API key to a merchant (test mode unless --live); prints it once."""
    merchant = _merchant(merchant_id)
    api_key, raw = ApiKey.generate(merchant, name=name[:100], livemode=livemode)
    db.session.add(api_key)
    db.session.commit()
    click.echo(
        f"{_mode(livemode).capitalize()} API key {api_key.id} ({api_key.prefix}…) "
        f"for merchant {merchant.id}: {raw}"
    )
    click.echo("Store it now: it is not shown again.")


@keys.command("revoke")
@click.argument("key")
def revoke_key(key: str) -> None:
    """Revoke a key by its id or its shown prefix; it stops working at once."""
    conditions = [ApiKey.prefix == key]
    if key.isdigit():
        conditions.append(ApiKey.id == int(key))
    found = db.session.execute(select(ApiKey).where(or_(*conditions))).scalars().all()
    if not found:
        raise click.ClickException(f"no API key with id or prefix {key!r}")
    if len(found) > 1:
        ids = ", ".join(str(k.id) for k in found)
        raise click.ClickException(f"{key!r} matches several keys ({ids}): revoke by id")
    api_key = found[0]
    if api_key.revoked_at is not None:
        click.echo(f"API key {api_key.id} ({api_key.prefix}…) was already revoked.")
        return
    api_key.revoked_at = utcnow()
    db.session.commit()
    click.echo(f"API key {api_key.id} ({api_key.prefix}…) revoked.")


def _mode(livemode: bool) -> str:
    return "live" if livemode else "test"


def _limit(ctx, param, value: str | None) -> int | None | str:
    if value is None:
        return None
    if value.lower() == "default":
        return "default"
    if not value.isdigit() or not 1 <= int(value) <= 1_000_000:
        raise click.BadParameter("must be a whole number of requests per second ≥ 1, or 'default'")
    return int(value)


@merchants.command("limits")
@click.argument("merchant_id", type=int)
@click.option("--read", callback=_limit, help="GET requests per second per API key, or 'default'.")
@click.option("--write", callback=_limit, help="Other requests per second per key, or 'default'.")
def set_limits(merchant_id: int, read, write) -> None:
    """Show a merchant's /api/v1 rate limits, or set its own (--read/--write N, or 'default')."""
    merchant = _merchant(merchant_id)
    if read is not None:
        merchant.api_read_limit = None if read == "default" else read
    if write is not None:
        merchant.api_write_limit = None if write == "default" else write
    db.session.commit()
    config = current_app.config
    for what, own, default in (
        ("reads ", merchant.api_read_limit, config["API_RATE_LIMIT_READ_PER_SECOND"]),
        ("writes", merchant.api_write_limit, config["API_RATE_LIMIT_WRITE_PER_SECOND"]),
    ):
        origin = "merchant's own" if own is not None else "default"
        click.echo(f"Merchant {merchant.id} {what}: {own or default}/s per API key ({origin})")


def register(app: Flask) -> None:
    app.cli.add_command(merchants)
