from flask import Blueprint

bp = Blueprint("notify", __name__)

from demo_shop.blueprints.notify import routes  # noqa: E402,F401
