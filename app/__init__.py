"""PayBridge: the application factory reads like a table of contents."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from app import blueprints, cli, errors, models, wiring
from app.accounts.audit import protect_audit_log
from app.config import INSTANCE_DIR, Config, load_config
from app.extensions import (
    api,
    csrf,
    db,
    limiter,
    login_manager,
    migrate,
    serialise_sqlite_transactions,
)
from app.logging_setup import configure_logging, request_route, request_seconds
from app.metrics import HTTP_LATENCY, HTTP_REQUESTS
from app.security_headers import register_security_headers

assert models  # every table known to Alembic and the ORM before the first query


def create_app(config: Config | str | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    if not isinstance(config, Config):
        config = load_config(config)
    app.config.from_object(config)
    app.config["PAYBRIDGE_ENV"] = config.ENV_NAME
    if app.config["PROXY_FIX_HOPS"]:
        hops = app.config["PROXY_FIX_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)

    configure_logging(app)
    register_extensions(app)
    wiring.register_hooks(app)
    blueprints.register_all(app)
    errors.register_error_handlers(app)
    cli.register_all(app)
    register_request_metrics(app)
    register_security_headers(app)
    return app


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            serialise_sqlite_transactions(db.engine)
    # Inside the package, so an installed PayBridge finds them wherever `flask db upgrade` runs.
    migrate.init_app(app, db, directory=str(Path(app.root_path) / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    limiter.init_app(app)
    api.init_app(app)
    protect_audit_log()


def register_request_metrics(app: Flask) -> None:
    @app.after_request
    def count_request(response):
        route = request_route()
        HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        seconds = request_seconds()
        if seconds is not None:
            HTTP_LATENCY.labels(route).observe(seconds)
        return response
