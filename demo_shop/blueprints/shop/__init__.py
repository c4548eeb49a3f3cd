from flask import Blueprint

bp = Blueprint("shop", __name__)

from demo_shop.blueprints.shop import routes  # noqa: E402,F401
