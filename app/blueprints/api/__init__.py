"""JSON API v1 for client apps (flask-smorest: schemas validate requests and make the OpenAPI)."""

from __future__ import annotations

from flask import Flask, Request
from flask_smorest import Blueprint as SmorestBlueprint
from webargs.flaskparser import FlaskParser

from app.common import strict_json
from app.errors import PayBridgeError
from app.extensions import api, csrf
from app.payments.validation import validation_error

# What a request body may hold (docs/api.md): far beyond any valid body, far below harm.
BODY_LIMITS = strict_json.Limits(max_depth=8, max_string=10_000)


class ApiArgumentsParser(FlaskParser):
    """webargs parser whose every failure is one of our errors, never webargs' 422."""

    DEFAULT_VALIDATION_STATUS = 400

    def load_json(self, req: Request, schema):
        """The body as a JSON object: 415 for another media type, 400 for anything not an object."""
        body = req.get_data(cache=True)
        if not body.strip() and getattr(schema, "BODY_OPTIONAL", False):
            return {}  # an action whose every field is optional may be POSTed with no body
        if not req.is_json:
            raise PayBridgeError(
                "UNSUPPORTED_MEDIA_TYPE",
                f"Send the body as application/json, not {req.mimetype or 'no content type'}.",
            )
        if not body.strip():
            raise PayBridgeError("INVALID_JSON", "The request body is empty; send a JSON object.")
        try:
            data = strict_json.loads(body, BODY_LIMITS)
        except strict_json.StrictJsonError as exc:
            message = f"The request body is not acceptable JSON: {exc}."
            raise PayBridgeError("INVALID_JSON", message) from None
        if not isinstance(data, dict):
            raise PayBridgeError("INVALID_JSON")
        return data

    def handle_error(self, error, req, schema, *, error_status_code, error_headers):
        """Per-field messages in our format: {"error": {"code": "VALIDATION_ERROR", ...}}."""
        messages = error.messages
        if isinstance(messages, dict) and len(messages) == 1:
            # webargs keys messages by location ("json", "query"); clients want the fields.
            ((location, inner),) = messages.items()
            if location in ("json", "query", "headers", "view_args") and isinstance(inner, dict):
                messages = inner
        raise validation_error(messages)


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = ApiArgumentsParser()


bp = Blueprint("api", __name__, url_prefix="/api/v1", description="Payments")


def register(app: Flask) -> None:
    csrf.exempt(bp)
    api.register_blueprint(bp)
    routes.document_security(api)
    event_docs.document_event_types(api)


from app.blueprints.api import endpoints, event_docs, redelivery, routes  # noqa: E402,F401  (routes attach to `bp`)
