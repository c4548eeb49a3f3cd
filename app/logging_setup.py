"""Logging configured once: every line carries the request id (web) or job id (worker)."""

from __future__ import annotations

import logging
import re
import secrets

from flask import Flask, g, has_request_context, request
from rq import get_current_job

REQUEST_ID_HEADER = "X-Request-Id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def _install_context_factory() -> None:
    """Give every log record a `context` (request or job id), whichever handler formats it."""
    base = logging.getLogRecordFactory()
    if getattr(base, "_paybridge", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = base(*args, **kwargs)
        record.context = current_context_id()
        return record

    factory._paybridge = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def current_context_id() -> str:
    if has_request_context():
        return getattr(g, "request_id", "-")
    try:
        job = get_current_job()
    except Exception:  # outside a worker there is no job, and no connection to ask
        job = None
    return f"job:{job.id}" if job else "-"


def configure_logging(app: Flask) -> None:
    level = getattr(logging, str(app.config.get("LOG_LEVEL", "INFO")).upper(), logging.INFO)
    _install_context_factory()
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(context)s] %(name)s: %(message)s")
    )
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
    logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)

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
