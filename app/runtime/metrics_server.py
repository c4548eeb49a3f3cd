"""The worker process's own /metrics: a small HTTP server in a thread of `python worker.py`.

Why its own port rather than the multiprocess directory web's /metrics reads: that directory
works only on one host, and a worker on another host than gunicorn (or in another container)
would go unseen. Each worker process now answers for itself at
`WORKER_METRICS_HOST:WORKER_METRICS_PORT/metrics` (`--metrics-port` for a second worker on the
same host), the same text web's /metrics serves, its scrape-time gauges read the same way
(app/runtime/scrape.py).

Who may read it: the address is 127.0.0.1 unless set (a Prometheus on the same host, or an
agent beside it), and METRICS_TOKEN, which production requires, is asked for just as web's
/metrics asks for it, so listening on another address exposes nothing without the token.

A port that is taken does not stop the worker: delivering notifications matters more than
being counted. It says so, loudly, at start; Prometheus shows the target down.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from flask import Flask

from app.runtime.scrape import scrape, token_accepted

log = logging.getLogger("paybridge.worker.metrics")

UNAUTHORISED = json.dumps(
    {
        "error": {
            "code": "AUTHENTICATION_REQUIRED",
            "message": "Send the metrics token: Authorization: Bearer <METRICS_TOKEN>.",
        }
    }
).encode()


class MetricsApp:
    """The WSGI application: GET /metrics, with the token when one is set."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != "/metrics":
            return _answer(start_response, "404 Not Found", b"Only /metrics here.\n")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _answer(start_response, "405 Method Not Allowed", b"GET /metrics\n")
        token = self.app.config["METRICS_TOKEN"]
        if not token_accepted(token, environ.get("HTTP_AUTHORIZATION")):
            challenge = ("WWW-Authenticate", 'Bearer realm="PayBridge metrics"')
            return _answer(
                start_response, "401 Unauthorized", UNAUTHORISED, "application/json", challenge
            )
        try:
            with self.app.app_context():
                payload, content_type = scrape(self.app)
        except Exception:
            log.exception("worker metrics: the scrape failed")
            return _answer(start_response, "500 Internal Server Error", b"scrape failed\n")
        return _answer(start_response, "200 OK", payload, content_type)


def _answer(start_response, status: str, body: bytes, content_type="text/plain", *headers):
    start_response(
        status,
        [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers],
    )
    return [body]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow scrape never holds the worker's shutdown


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass  # one line per scrape would drown the worker's own lines


class MetricsServer:
    """Serves MetricsApp on host:port in a daemon thread, from start() to stop()."""

    def __init__(self, app: Flask, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Listen and serve; False (and an error line) when the address cannot be had."""
        server_class = _Server6 if ":" in self.host else _Server
        try:
            self._server = make_server(
                self.host, self.port, MetricsApp(self.app), server_class, _QuietHandler
            )
        except OSError as exc:
            log.error(
                "worker metrics cannot listen on %s:%d (%s): this worker runs without them; "
                "give each worker on one host its own port (--metrics-port)",
                self.host, self.port, exc.strerror or exc,
            )  # fmt: skip
            return False
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )
        self._thread.start()
        log.info("worker metrics at http://%s:%d/metrics", self.host, self.port)
        return True

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
