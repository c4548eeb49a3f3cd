"""One exception hierarchy for PayBridge, rendered as JSON for the API and HTML for pages.

Every error code the API can answer is listed in ERROR_CODES: the set is fixed and documented
(README, OpenAPI). Add a code here, never inline in a view.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask, jsonify, make_response, render_template, request
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

from app.extensions import db

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErrorSpec:
    status: int
    message: str
    retryable: bool = False


ERROR_CODES: dict[str, ErrorSpec] = {
    "VALIDATION_ERROR": ErrorSpec(400, "The request has invalid or missing fields."),
    "INVALID_JSON": ErrorSpec(400, "The request body is not a JSON object."),
    "INVALID_CURSOR": ErrorSpec(
        400, "The cursor is not one this list gave out; start again from the first page."
    ),
    "AUTHENTICATION_REQUIRED": ErrorSpec(401, "Send an API key: Authorization: Bearer <key>."),
    "INVALID_API_KEY": ErrorSpec(401, "The API key is unknown or revoked."),
    "FORBIDDEN": ErrorSpec(403, "You are not allowed to do this."),
    "MODE_NOT_CONFIGURED": ErrorSpec(
        403, "This PayBridge does not run the API key's mode (test or live) with Stripe."
    ),
    "NOT_FOUND": ErrorSpec(404, "There is nothing at this address."),
    "PAYMENT_NOT_FOUND": ErrorSpec(404, "No such payment."),
    "NOTIFICATION_NOT_FOUND": ErrorSpec(404, "No such notification."),
    "NOTIFICATION_ENDPOINT_NOT_FOUND": ErrorSpec(404, "No such notification endpoint."),
    "SUBSCRIPTION_NOT_FOUND": ErrorSpec(404, "No such subscription."),
    "REFUND_NOT_FOUND": ErrorSpec(404, "No such refund."),
    "EVENT_NOT_FOUND": ErrorSpec(404, "No such event, or it is past its retention."),
    "METHOD_NOT_ALLOWED": ErrorSpec(405, "This method is not allowed here."),
    "DUPLICATE_MERCHANT_REFERENCE": ErrorSpec(
        409, "A payment with this merchant_reference already exists."
    ),
    "REQUEST_IN_PROGRESS": ErrorSpec(
        409, "A request with this Idempotency-Key is still being processed; retry shortly.", True
    ),
    "PAYMENT_ALREADY_FINAL": ErrorSpec(409, "The payment is already final."),
    "NO_NOTIFICATION_ENDPOINT": ErrorSpec(
        409, "No enabled notification endpoint receives this notification's type."
    ),
    "NOTIFICATION_PENDING": ErrorSpec(
        409, "The notification is still being delivered; resend it once delivered or failed."
    ),
    "NOTIFICATION_ENDPOINT_DISABLED": ErrorSpec(
        409, "The notification endpoint is disabled; enable it, then redeliver."
    ),
    "ILLEGAL_TRANSITION": ErrorSpec(409, "This status change is not allowed."),
    "PAYLOAD_TOO_LARGE": ErrorSpec(413, "The request body is too large."),
    "UNSUPPORTED_MEDIA_TYPE": ErrorSpec(415, "Send the body as application/json."),
    "IDEMPOTENCY_KEY_REUSED": ErrorSpec(
        422, "This Idempotency-Key was already used with a different request."
    ),
    "PSP_REJECTED": ErrorSpec(422, "The payment service provider rejected the payment."),
    "INVALID_REFUND_AMOUNT": ErrorSpec(400, "A refund amount must be a positive integer."),
    "REFUND_NOT_ALLOWED": ErrorSpec(409, "Only a SUCCESS payment can be refunded."),
    "REFUND_AMOUNT_EXCEEDS_REMAINING": ErrorSpec(
        422, "The refund amount is more than what remains refundable on the payment."
    ),
    "REFUND_REJECTED": ErrorSpec(422, "The payment service provider rejected the refund."),
    "DISPUTE_NOT_FOUND": ErrorSpec(404, "No such dispute."),
    "DISPUTE_CLOSED": ErrorSpec(409, "The dispute is closed: it takes no evidence or acceptance."),
    "DISPUTE_EVIDENCE_SUBMITTED": ErrorSpec(
        409, "The dispute's evidence is submitted and under review: it takes no other answer."
    ),
    "DISPUTE_PAST_DUE": ErrorSpec(
        409, "The dispute's evidence was due earlier: the PSP takes no evidence any more."
    ),
    "CONFLICT_NOT_FOUND": ErrorSpec(404, "No such payment conflict."),
    "CONFLICT_ALREADY_RESOLVED": ErrorSpec(409, "The payment conflict is already resolved."),
    "CONFLICT_NOT_REFUNDABLE": ErrorSpec(
        409, "This payment conflict has no payment at the PSP that PayBridge can refund."
    ),
    "CONFLICT_REFUND_REJECTED": ErrorSpec(
        422, "The payment service provider did not refund the conflicting payment."
    ),
    "RATE_LIMITED": ErrorSpec(429, "Too many requests; slow down.", True),
    "INTERNAL_ERROR": ErrorSpec(500, "Something went wrong on our side.", True),
    "PSP_ERROR": ErrorSpec(502, "The payment service provider answered with an error.", True),
    "PSP_UNAVAILABLE": ErrorSpec(
        503, "The payment service provider cannot be reached; retry later.", True
    ),
    "PSP_RATE_LIMITED": ErrorSpec(
        503,
        "Too many payments are being registered with the payment service provider right now; "
        "the payment stays CREATED: retry with the same Idempotency-Key after Retry-After.",
        True,
    ),
    "SERVICE_UNAVAILABLE": ErrorSpec(503, "A service PayBridge depends on is down.", True),
    "WEBHOOK_SIGNATURE_INVALID": ErrorSpec(400, "The webhook signature is invalid."),
    "WEBHOOK_PAYLOAD_INVALID": ErrorSpec(400, "The webhook payload is not a valid event."),
}


class PayBridgeError(Exception):
    """An error with a code from ERROR_CODES; the code decides HTTP status and default text."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        param: str | None = None,
        details: dict | list | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}: add it to ERROR_CODES")
        self.code = code
        self.spec = ERROR_CODES[code]
        self.message = message or self.spec.message
        self.param = param
        self.details = details
        self.headers = headers or {}
        super().__init__(f"{code}: {self.message}")

    @property
    def status(self) -> int:
        return self.spec.status

    def to_dict(self) -> dict:
        body: dict = {"code": self.code, "message": self.message}
        if self.param:
            body["param"] = self.param
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


# The database cannot answer: down, unreachable, its connections used up, or a lock wait that
# outlasted the retries. Whatever the request was, the answer is SERVICE_UNAVAILABLE with a
# Retry-After, never a 500: the client (or Stripe) tries again and nothing was half-done, since
# the failed transaction rolls back. The API and the webhook endpoint share this rule.
DATABASE_DOWN = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)
DATABASE_RETRY_AFTER_SECONDS = 30


def database_unavailable(message: str | None = None) -> PayBridgeError:
    """The SERVICE_UNAVAILABLE error a request answers while the database does not."""
    return PayBridgeError(
        "SERVICE_UNAVAILABLE",
        message or "The database cannot be reached; retry later.",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


class NotFoundError(PayBridgeError):
    def __init__(self, code: str = "NOT_FOUND", message: str | None = None) -> None:
        super().__init__(code, message)


class ValidationError(PayBridgeError):
    def __init__(self, message: str, *, param: str | None = None, details=None) -> None:
        super().__init__("VALIDATION_ERROR", message, param=param, details=details)


# Requests that get JSON errors whatever they accept.
JSON_PREFIXES = ("/api/", "/webhooks/", "/healthz", "/readyz", "/metrics")

HTTP_CODE_NAMES = {
    400: "VALIDATION_ERROR",
    401: "AUTHENTICATION_REQUIRED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}


def wants_json() -> bool:
    if request.path.startswith(JSON_PREFIXES):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def render_error(error: PayBridgeError):
    if wants_json():
        response = jsonify(error.to_dict())
    else:
        response = render_template("errors/error.html", error=error), error.status
        response = _as_response(response)
    response.status_code = error.status
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def _as_response(rv):
    return make_response(rv)


def _rollback() -> None:
    try:
        db.session.rollback()
    except Exception:  # the connection the rollback needs may be the one that failed
        log.warning("rollback after an error failed too", exc_info=True)


def register_error_handlers(app: Flask) -> None:
    """Render PayBridge errors, HTTP errors and crashes in the one format each client expects."""

    @app.errorhandler(PayBridgeError)
    def handle_paybridge_error(error: PayBridgeError):
        if error.status >= 500:
            _rollback()
            log.warning("request failed: %s", error)
        return render_error(error)

    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException):
        code = HTTP_CODE_NAMES.get(error.code or 500, "INTERNAL_ERROR")
        message = error.description if error.code and error.code < 500 else None
        wrapped = PayBridgeError(code, message)
        response = render_error(wrapped)
        response.status_code = error.code or 500
        if error.code == 405 and getattr(error, "valid_methods", None):
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        _rollback()
        if isinstance(error, DATABASE_DOWN):
            # An outage, not a bug: one line, no traceback for every request it turns away.
            log.error("%s %s: database unavailable (%s)", request.method, request.path,
                      type(error).__name__)  # fmt: skip
            return render_error(database_unavailable())
        log.exception("unhandled error")
        return render_error(PayBridgeError("INTERNAL_ERROR"))
