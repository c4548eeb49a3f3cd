"""The shop's blueprints: `shop` (the shopper's pages) and `notify` (PayBridge's notifications)."""

from flask import Flask

from demo_shop.blueprints import notify, shop


def register_all(app: Flask) -> None:
    app.register_blueprint(shop.bp)
    app.register_blueprint(notify.bp)
