"""Error pages: HTML for shoppers, JSON for PayBridge at /notify."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

MESSAGES = {
    400: "That request was incomplete.",
    404: "There is nothing at this address.",
    429: "Too many attempts. Please wait a minute and try again.",
    500: "Something went wrong on our side. Please try again in a moment.",
}


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(CSRFError, csrf_error)
    # A bug reaches this too, as a 500 (Flask logs it first; the session is rolled back at
    # the end of the request).
    app.register_error_handler(HTTPException, http_error)


def csrf_error(error: CSRFError):
    """A form without this session's CSRF token: old, or not sent from this shop."""
    message = (
        "This form has expired or was not sent from this shop (CSRF check failed). "
        "Go back, reload the page and try again."
    )
    return render_template("errors.html", status=400, message=message), 400


def http_error(error: HTTPException):
    status = error.code or 500
    if request.blueprint == "notify":
        code = error.name.upper().replace(" ", "_")
        return jsonify(error={"code": code, "message": error.description}), status
    # abort(404, "No such order") carries a message for the shopper; werkzeug's own do not.
    own = error.description if error.description != type(error).description else None
    message = own or MESSAGES.get(status, error.name)
    return render_template("errors.html", status=status, message=message), status
