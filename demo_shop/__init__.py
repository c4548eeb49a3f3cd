"""PayBridge Demo Shop: a client app of PayBridge, as a merchant would build one.

It runs as its own process with its own database, and knows PayBridge only as an outside
service: its public JSON API (paybridge.py), the signed notifications PayBridge sends to
POST /notify (notifications.py), and the shopper coming back to the success and cancel URLs.

    python -m demo_shop init --paybridge-credentials merchant.json   # store and catalogue
    python -m demo_shop run --port 5001   # catches up with the events missed while stopped
"""

from __future__ import annotations

import logging
import os
import secrets

from flask import Flask, Response

from demo_shop import models
from demo_shop.blueprints import register_all
from demo_shop.catch_up import start_catching_up
from demo_shop.cli import register as register_cli
from demo_shop.config import load_settings
from demo_shop.errors import register_error_handlers as register_error_pages
from demo_shop.extensions import csrf, db, limiter, tune_sqlite
from demo_shop.money import format_money
from demo_shop.paybridge import PayBridgeClient

assert models  # every table known to create_all


def create_app(config: dict | None = None, *, instance_path: str | None = None) -> Flask:
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    app.config.update(load_settings(app.instance_path))
    app.config.update(config or {})
    configure_logging(app)
    configure_secret_key(app)
    register_extensions(app)
    register_paybridge_client(app)
    register_catch_up(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_template_filters(app)
    register_commands(app)
    register_security_headers(app)
    return app


def configure_logging(app: Flask) -> None:
    # Under `python -m demo_shop run` nobody else configures logging: show the shop's INFO lines
    # (each notification and what came of it). A host that configured logging keeps its own.
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


def configure_secret_key(app: Flask) -> None:
    if not app.config["SECRET_KEY"]:
        # A key for this process only (logins and carts end when it stops): `init` stores a
        # lasting one in the instance folder, SHOP_SECRET_KEY overrides it.
        app.config["SECRET_KEY"] = secrets.token_hex(32)


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            os.makedirs(app.instance_path, exist_ok=True)
            tune_sqlite(db.engine)
        # The shop's whole schema step: tables that are missing are created (it has no
        # migrations; a new column means a new store, which is fine for a demo).
        db.create_all()
    csrf.init_app(app)
    limiter.init_app(app)


def register_paybridge_client(app: Flask) -> None:
    """One API client per process (it pools its connections); none until the shop has a key."""
    if app.config["PAYBRIDGE_API_KEY"]:
        app.extensions["paybridge"] = PayBridgeClient(
            app.config["PAYBRIDGE_URL"], app.config["PAYBRIDGE_API_KEY"]
        )


def register_catch_up(app: Flask) -> None:
    """Pull what PayBridge notified while the shop was stopped (demo_shop/catch_up.py)."""
    if app.config["CATCH_UP_ON_START"] not in (False, "", "0") and "paybridge" in app.extensions:
        start_catching_up(app)


def register_blueprints(app: Flask) -> None:
    register_all(app)


def register_error_handlers(app: Flask) -> None:
    register_error_pages(app)


def register_template_filters(app: Flask) -> None:
    app.add_template_filter(format_money, "money")


def register_commands(app: Flask) -> None:
    register_cli(app)


# Scripts, styles and images from the shop only; never framed. No form-action: paying is a
# form whose answer redirects to the PSP's checkout page, on an origin the shop learns from
# PayBridge per payment.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'self'"
)


def register_security_headers(app: Flask) -> None:
    """Every answer: no content-type sniffing, no framing, the shop's content policy."""

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response
