"""JSON API v1 for client apps (flask-smorest: schemas validate requests and make the OpenAPI)."""

from flask import Flask
from flask_smorest import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1", description="Payments")


def register(app: Flask) -> None:
    from app.blueprints.api import routes  # noqa: F401
    from app.extensions import api, csrf

    csrf.exempt(bp)
    api.register_blueprint(bp)
