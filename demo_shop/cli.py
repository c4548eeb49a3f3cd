"""`python -m demo_shop init` (store, catalogue, PayBridge credentials) and `merchant-id`."""

from __future__ import annotations

import json
import secrets

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from demo_shop.catalogue import add_missing_prints
from demo_shop.catch_up import catch_up
from demo_shop.config import read_instance_settings, save_instance_settings
from demo_shop.extensions import db
from demo_shop.paybridge import PayBridgeError


@click.command("init")
@click.option(
    "--paybridge-credentials",
    type=click.File("r"),
    help="What `flask merchants create … --json` printed at PayBridge (`-`: read it from stdin); "
    "the shop keeps the API key and signing secret in its instance folder.",
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
        _save(
            app,
            PAYBRIDGE_MERCHANT_ID=merchant["merchant_id"],
            PAYBRIDGE_API_KEY=merchant["api_key"],
            PAYBRIDGE_SIGNING_SECRET=merchant["signing_secret"],
        )
        click.echo(
            f"connected to PayBridge as merchant {merchant['merchant_id']} "
            f"{_key_mode(merchant['api_key'])}"
        )
    added = add_missing_prints()
    db.session.commit()
    click.echo(f"store ready ({app.config['SQLALCHEMY_DATABASE_URI']}); {added} prints added")


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
        return {key: merchant[key] for key in ("merchant_id", "api_key", "signing_secret")}
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
