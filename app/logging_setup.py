"""Logging configured once: every line carries the request id (web) or job id (worker), as
text for a person at a terminal or as one JSON object per line for a log collector
(LOG_FORMAT), and every web request gets one access line (ACCESS_LOG).

The access line is written here rather than by gunicorn (whose access log stays off): only the
app knows the route a request matched, its request id and the merchant it acted for, and one
line per request in the same shape as every other line is what a collector can index. It
says method, path, route (the URL rule: ids stay out of its values), status, duration,
request id, the client's address as ProxyFix gives it, and the merchant when known; never a
query string, a header or a body, so no key, token or card data reaches it.
"""

from __future__ import annotations

import logging
import re
import secrets
import time

from flask import Flask, g, has_request_context, request
from pythonjsonlogger.orjson import OrjsonFormatter
from rq import get_current_job

REQUEST_ID_HEADER = "X-Request-Id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(context)s] %(name)s: %(message)s"
ACCESS_LOGGER = "paybridge.access"
# A path or address from outside is cut to this many characters in the access line.
ACCESS_FIELD_MAX = 512

access_log = logging.getLogger(ACCESS_LOGGER)


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


class JsonLineFormatter(OrjsonFormatter):
    """One JSON object per line: time, level, logger, message, the request or job id, the
    fields a line passed as `extra`, and a traceback as text (orjson: the cheapest encoder)."""

    def __init__(self) -> None:
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )

    def add_fields(self, log_data, record, message_dict) -> None:
        super().add_fields(log_data, record, message_dict)
        context = log_data.pop("context", "-")
        if context.startswith("job:"):
            log_data["job_id"] = context[4:]
        elif context != "-":
            log_data["request_id"] = context


def build_formatter(log_format: str) -> logging.Formatter:
    """The formatter LOG_FORMAT names: `json` or `text`."""
    return JsonLineFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def format_server_lines(logger: logging.Logger, log_format: str) -> None:
    """gunicorn's own lines (its start, workers booting, exiting, timing out) as JSON objects
    too when LOG_FORMAT is json, so a log collector reads one shape; as text, gunicorn's own."""
    if log_format == "json":
        for handler in logger.handlers:
            handler.setFormatter(JsonLineFormatter())


def configure_logging(app: Flask) -> None:
    level = getattr(logging, str(app.config.get("LOG_LEVEL", "INFO")).upper(), logging.INFO)
    _install_context_factory()
    handler = logging.StreamHandler()
    handler.setFormatter(build_formatter(app.config.get("LOG_FORMAT", "text")))
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
    register_request_logging(app)


def register_request_logging(app: Flask) -> None:
    """The request id of every line, and one access line per request (ACCESS_LOG)."""
    with_access_line = bool(app.config.get("ACCESS_LOG", True))

    # Registered before every other hook: it runs first before a request and its after_request
    # runs last, so the access line sees the final status, 404s and error answers included.
    @app.before_request
    def assign_request_id() -> None:
        g.request_started = time.perf_counter()
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = (
            incoming if _SAFE_REQUEST_ID.match(incoming) else "req_" + secrets.token_hex(8)
        )

    @app.after_request
    def finish_request(response):
        response.headers[REQUEST_ID_HEADER] = getattr(g, "request_id", "")
        if with_access_line:
            log_access(response.status_code)
        return response


def note_merchant(merchant_id: int | None) -> None:
    """The merchant this request acts for, for its access line (the API key's, the user's)."""
    g.access_merchant_id = merchant_id


def request_route() -> str:
    """The URL rule the request matched ("unmatched" for a 404): a label without ids."""
    return request.url_rule.rule if request.url_rule else "unmatched"


def request_seconds() -> float | None:
    started = g.get("request_started")
    return None if started is None else time.perf_counter() - started


def log_access(status: int) -> None:
    """The request's access line; its fields go as `extra` (JSON keys), and into the text."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    seconds = request_seconds()
    duration_ms = round(seconds * 1000, 1) if seconds is not None else None
    path = _outside_text(request.path)
    remote = _outside_text(request.remote_addr or "-")
    route = request_route()
    merchant_id = g.get("access_merchant_id")
    access_log.info(
        "%s %s %d %sms route=%s remote=%s merchant=%s",
        request.method, path, status, duration_ms, route, remote, merchant_id or "-",
        extra={
            "method": request.method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "remote_addr": remote,
            "merchant_id": merchant_id,
        },
    )  # fmt: skip


def _outside_text(value: str) -> str:
    """Text a client chose, made safe for one log line: bounded, and escaped when it holds a
    line break or other control character (a forged second line in the text format)."""
    value = value[:ACCESS_FIELD_MAX]
    return value if value.isprintable() else value.encode("unicode_escape").decode("ascii")
