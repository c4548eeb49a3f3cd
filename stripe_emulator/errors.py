"""Stripe's error objects, raised by the service and rendered by the API layer."""

from __future__ import annotations

DOC_URL = "https://stripe.com/docs/error-codes/{}"


class StripeErrorResponse(Exception):
    """An error answered as ``{"error": {...}}`` with Stripe's HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        save_idempotent: bool = True,
        headers: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.decline_code = decline_code
        # Stripe stores no idempotent result when parameter validation fails.
        self.save_idempotent = save_idempotent
        self.headers = headers or {}

    def body(self) -> dict:
        err: dict = {"type": self.type, "message": self.message}
        if self.code:
            err["code"] = self.code
            err["doc_url"] = DOC_URL.format(self.code.replace("_", "-"))
        if self.param:
            err["param"] = self.param
        if self.decline_code:
            err["decline_code"] = self.decline_code
        return {"error": err}


def invalid(param: str, message: str, code: str | None = None) -> StripeErrorResponse:
    """A parameter Stripe refuses (400); as a validation failure it stores no idempotent result."""
    return StripeErrorResponse(400, message, code=code, param=param, save_idempotent=False)


def missing(param: str) -> StripeErrorResponse:
    return invalid(param, f"Missing required param: {param}.", "parameter_missing")


def unknown(param: str) -> StripeErrorResponse:
    return invalid(param, f"Received unknown parameter: {param}", "parameter_unknown")


def no_such(kind: str, obj_id: str, param: str = "id", status: int = 404) -> StripeErrorResponse:
    return StripeErrorResponse(
        status, f"No such {kind}: '{obj_id}'", code="resource_missing", param=param
    )


def in_other_mode(
    kind: str, obj_id: str, *, exists_in_live: bool, param: str = "id", status: int = 404
) -> StripeErrorResponse:
    """Stripe's 404 when the id names an object of the other mode than the request's key."""
    there, used = ("live", "test") if exists_in_live else ("test", "live")
    return StripeErrorResponse(
        status,
        f"No such {kind}: '{obj_id}'; a similar object exists in {there} mode, but a {used} "
        "mode key was used to make this request.",
        code="resource_missing",
        param=param,
    )


def not_found_route(method: str, path: str) -> StripeErrorResponse:
    return StripeErrorResponse(
        404,
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
        "or we can help at https://support.stripe.com/.",
    )
