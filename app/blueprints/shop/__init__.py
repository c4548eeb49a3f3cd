from flask import Blueprint

bp = Blueprint("shop", __name__)

from app.blueprints.shop import plans, routes  # noqa: E402,F401  (plans: the subscription plan)
