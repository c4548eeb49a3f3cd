"""A real HTTP server standing in for a client app's notify endpoint."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.waiting import wait_until


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int = 0  # the sender's side of the TCP connection (a reused one repeats it)

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every POST; answers `status` after `delay` seconds (both changeable mid-test)."""

    status: int = 200
    delay: float = 0.0
    extra_headers: dict[str, str] = field(default_factory=dict)  # added to every answer
    requests: list[ReceivedRequest] = field(default_factory=list)  # answered 2xx
    hits: int = 0  # every POST, whatever it was answered
    in_flight: int = 0
    max_in_flight: int = 0  # the most POSTs it held at once (senders' concurrency)
    arrived_at: list[float] = field(default_factory=list)  # each POST's arrival (monotonic)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/notify"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like a real client app's server

            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.hits += 1
                    receiver.arrived_at.append(time.monotonic())
                    receiver.in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver._lock:
                    receiver.in_flight -= 1
                status = receiver.status
                if 200 <= status < 300:
                    with receiver._lock:
                        receiver.requests.append(
                            ReceivedRequest(
                                self.path,
                                dict(self.headers.items()),
                                body,
                                client_port=self.client_address[1],
                            )
                        )
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    for name, value in receiver.extra_headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up first (a timeout test): nothing to answer

            def log_message(self, *args):  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Until `count` requests were accepted (2xx); those requests."""

        def arrived():
            with self._lock:
                return list(self.requests) if len(self.requests) >= count else None

        return wait_until(
            arrived,
            what=f"{count} notifications",
            timeout=timeout,
            interval=0.02,
            details=lambda: f"got {len(self.requests)}",
        )
