"""Blueprints, one package each: health (ops), api (JSON v1), webhooks (PSP in),
checkout (shopper's return pages), dashboard (merchants). The demo storefront is not here:
it is a client app of its own (demo_shop/)."""

from flask import Flask


def register_all(app: Flask) -> None:
    from app.blueprints.api import register as register_api
    from app.blueprints.checkout import bp as checkout_bp
    from app.blueprints.dashboard import bp as dashboard_bp
    from app.blueprints.health import bp as health_bp
    from app.blueprints.webhooks import bp as webhooks_bp

    app.register_blueprint(health_bp)
    register_api(app)
    app.register_blueprint(webhooks_bp)
    app.register_blueprint(checkout_bp)
    app.register_blueprint(dashboard_bp)
