"""`python -m demo_shop init` (store, catalogue, PayBridge credentials) and `merchant-id`."""

from __future__ import annotations

import json
import secrets

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from demo_shop import endpoints
from demo_shop.catalogue import add_missing_prints
from demo_shop.catch_up import catch_up
from demo_shop.config import read_instance_settings, save_instance_settings
from demo_shop.extensions import db
from demo_shop.paybridge import PayBridgeClient, PayBridgeError


@click.command("init")
@click.option(
    "--paybridge-credentials",
    type=click.File("r"),
    help="What `flask merchants create … --json` printed at PayBridge (`-`: read it from stdin); "
    "the shop keeps the API key in its instance folder, then creates its two notification "
    "endpoints (orders, refunds) through PayBridge's API and keeps their secrets there too.",
)
@with_appcontext
def init_command(paybridge_credentials) -> None:
    """Fill the shop's catalogue and connect it to PayBridge (safe to run again)."""
    app = current_app
    if not _stored_secret_key(app):
        click.echo("generating the shop's SECRET_KEY (signs its session cookies)")
        _save(app, SECRET_KEY=secrets.token_hex(32))
    if paybridge_credentials is not None:
        merchant = _read_credentials(paybridge_credentials.read())
        credentials = {
            "PAYBRIDGE_MERCHANT_ID": merchant["merchant_id"],
            "PAYBRIDGE_API_KEY": merchant["api_key"],
        }
        if merchant["signing_secret"]:  # made with a notify URL: its POST /notify keeps working
            credentials["PAYBRIDGE_SIGNING_SECRET"] = merchant["signing_secret"]
        _save(app, **credentials)
        click.echo(
            f"connected to PayBridge as merchant {merchant['merchant_id']} "
            f"{_key_mode(merchant['api_key'])}"
        )
    added = add_missing_prints()
    db.session.commit()
    click.echo(f"store ready ({app.config['SQLALCHEMY_DATABASE_URI']}); {added} prints added")
    if app.config.get("PAYBRIDGE_API_KEY"):
        _ensure_endpoints(app)


def _ensure_endpoints(app: Flask) -> None:
    """The shop's notification endpoints (demo_shop/endpoints.py), created at PayBridge through
    its API unless the instance file has them already."""
    client = PayBridgeClient(app.config["PAYBRIDGE_URL"], app.config["PAYBRIDGE_API_KEY"])
    settings = {**app.config, **read_instance_settings(app.instance_path)}
    try:
        created = endpoints.create_missing(client, app.config["PUBLIC_URL"], settings)
    except PayBridgeError as error:
        raise click.ClickException(
            f"could not create the shop's notification endpoints at PayBridge "
            f"({app.config['PAYBRIDGE_URL']}): {error}; run init again once it answers"
        ) from None
    if created:
        _save(app, **created)
    stored = {**settings, **created}
    base = app.config["PUBLIC_URL"].rstrip("/")
    for endpoint in endpoints.ENDPOINTS.values():
        click.echo(
            f"notification endpoint {endpoint.name}: {stored[endpoint.id_setting]} at "
            f"{base}{endpoint.path} ({', '.join(endpoint.event_types)})"
        )


@click.command("merchant-id")
@with_appcontext
def merchant_id_command() -> None:
    """The PayBridge merchant the shop was connected as by `init`; exits 1 if none."""
    merchant_id = read_instance_settings(current_app.instance_path).get("PAYBRIDGE_MERCHANT_ID")
    if merchant_id is None:
        raise click.ClickException("not connected to PayBridge yet")
    click.echo(merchant_id)


@click.command("catch-up")
@with_appcontext
def catch_up_command() -> None:
    """Pull and apply the PayBridge events missed since the newest one applied (what `run`
    does on start)."""
    client = current_app.extensions.get("paybridge")
    if client is None:
        raise click.ClickException("not connected to PayBridge yet (python -m demo_shop init)")
    try:
        report = catch_up(client)
    except PayBridgeError as error:
        raise click.ClickException(f"PayBridge could not tell: {error}") from None
    click.echo(f"caught up: {report.summary()}")


def _read_credentials(text: str) -> dict:
    try:
        merchant = json.loads(text)
        found = {key: merchant[key] for key in ("merchant_id", "api_key")}
        return {**found, "signing_secret": merchant.get("signing_secret")}
    except (ValueError, KeyError, TypeError):
        raise click.ClickException(
            "--paybridge-credentials needs the JSON of `flask merchants create … --json`"
        ) from None


def _key_mode(api_key: str) -> str:
    """What the key's mode means for the shop's payments (PayBridge's keys say it, as Stripe's
    do: pbk_test_…, pbk_live_…)."""
    if api_key.startswith("pbk_live_"):
        return "with a live key: its payments take real money"
    return "with a test key: test payments, no real money moves"


def _stored_secret_key(app: Flask) -> bool:
    return bool(read_instance_settings(app.instance_path).get("SECRET_KEY"))


def _save(app: Flask, **values) -> None:
    path = save_instance_settings(app.instance_path, **values)
    app.config.update(values)
    click.echo(f"saved {', '.join(sorted(values))} in {path}")


def register(app: Flask) -> None:
    app.cli.add_command(init_command)
    app.cli.add_command(merchant_id_command)
    app.cli.add_command(catch_up_command)
