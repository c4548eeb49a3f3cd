"""The HTTP surfaces, one package each; they only translate requests into calls of the domain
packages and their answers back: health (ops), api (JSON v1 for client apps), webhooks (the
PSP's events), checkout (the shopper's return), dashboard (merchants and operators)."""

from flask import Flask

from app.blueprints import api, checkout, dashboard, health, webhooks


def register_all(app: Flask) -> None:
    app.register_blueprint(health.bp)
    api.register(app)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(checkout.bp)
    app.register_blueprint(dashboard.bp)
