"""PayBridge: the application factory reads like a table of contents."""

from __future__ import annotations

from flask import Flask

from app.config import INSTANCE_DIR, Config, load_config


def create_app(config: Config | str | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    if not isinstance(config, Config):
        config = load_config(config)
    app.config.from_object(config)
    app.config["PAYBRIDGE_ENV"] = config.ENV_NAME
    if app.config["PROXY_FIX_HOPS"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["PROXY_FIX_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)

    from app.logging_setup import configure_logging

    configure_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_commands(app)
    register_request_metrics(app)
    return app


def register_extensions(app: Flask) -> None:
    from app import models  # noqa: F401  (every table known to Alembic)
    from app.extensions import api, csrf, db, limiter, login_manager, migrate

    db.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        from app.extensions import serialise_sqlite_transactions

        with app.app_context():
            serialise_sqlite_transactions(db.engine)
    migrate.init_app(app, db, directory=str(app.root_path + "/../migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    limiter.init_app(app)
    api.init_app(app)

    from app import refunds, subscriptions

    refunds.init_app(app)
    subscriptions.init_app(app)


def register_blueprints(app: Flask) -> None:
    from app.blueprints import register_all

    register_all(app)


def register_error_handlers(app: Flask) -> None:
    from app.errors import register_error_handlers as register

    register(app)


def register_commands(app: Flask) -> None:
    from app.cli import register_all

    register_all(app)


def register_request_metrics(app: Flask) -> None:
    import time

    from flask import g, request

    from app.metrics import HTTP_LATENCY, HTTP_REQUESTS

    @app.before_request
    def start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def count_request(response):
        route = request.url_rule.rule if request.url_rule else "unmatched"
        HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        started = getattr(g, "request_started", None)
        if started is not None:
            HTTP_LATENCY.labels(route).observe(time.perf_counter() - started)
        return response
