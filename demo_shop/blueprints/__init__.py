"""The shop's blueprints: `shop` (the shopper's pages) and `notify` (PayBridge's notifications)."""

from flask import Flask


def register_all(app: Flask) -> None:
    from demo_shop.blueprints.notify import bp as notify_bp
    from demo_shop.blueprints.shop import bp as shop_bp

    app.register_blueprint(shop_bp)
    app.register_blueprint(notify_bp)
