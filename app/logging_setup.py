"""Logging configured once: every line carries the request id (web) or job id (worker)."""

from __future__ import annotations

import logging
import re
import secrets

from flask import Flask, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-Id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class ContextFilter(logging.Filter):
    """Adds `context` (request or job id) to every record so the format can print it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.context = current_context_id()
        return True


def current_context_id() -> str:
    if has_request_context():
        return getattr(g, "request_id", "-")
    try:
        from rq import get_current_job

        job = get_current_job()
    except Exception:  # outside a worker there is no job, and no connection to ask
        job = None
    return f"job:{job.id}" if job else "-"


def configure_logging(app: Flask) -> None:
    level = getattr(logging, str(app.config.get("LOG_LEVEL", "INFO")).upper(), logging.INFO)
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(context)s] %(name)s: %(message)s")
    )
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    # Replace (not add to) our handler when several apps are created in one process (tests).
    for existing in list(root.handlers):
        if getattr(existing, "_paybridge", False):
            root.removeHandler(existing)
    handler._paybridge = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Request lines from werkzeug and urllib3 would repeat what our own lines say.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("stripe").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)

    @app.before_request
    def assign_request_id() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = (
            incoming if _SAFE_REQUEST_ID.match(incoming) else "req_" + secrets.token_hex(8)
        )

    @app.after_request
    def echo_request_id(response):
        response.headers[REQUEST_ID_HEADER] = getattr(g, "request_id", "")
        return response
