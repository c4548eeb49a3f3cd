"""A client app's notify endpoint for the benchmark: answers after a configurable delay, counts.

`python -m bench.receiver --port N [--delay-ms D]`. Control and read-out (JSON):
POST /_control {"delay_ms": D, "status": 200}  GET /_stats  GET /_dump  POST /_reset
Every other POST is a notification: its webhook-id and (payment id, event type, status_version)
are recorded so the auditor can tell a redelivery (same webhook-id) from a duplicate
notification (two ids for one payment status).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, delay_ms: float) -> None:
        self.lock = threading.Lock()
        self.delay_ms = delay_ms
        self.status = 200
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.hits = 0
            self.ids: dict[str, int] = {}
            self.keys: dict[tuple, set] = {}
            self.first_at: float | None = None
            self.last_at: float | None = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffered: headers and body leave in one segment (no Nagle/delayed-ACK stall on keep-alive).
    wbufsize = 65536
    state: State

    def log_message(self, *args) -> None:  # quiet: thousands of requests a second
        pass

    def _json(self, body: dict | list, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        s = self.state
        if self.path == "/_stats":
            with s.lock:
                dup_keys = sum(1 for ids in s.keys.values() if len(ids) > 1)
                self._json(
                    {
                        "hits": s.hits,
                        "unique_ids": len(s.ids),
                        "redelivered_ids": sum(1 for n in s.ids.values() if n > 1),
                        "unique_payment_events": len(s.keys),
                        "duplicated_payment_events": dup_keys,
                        "first_at": s.first_at,
                        "last_at": s.last_at,
                        "delay_ms": s.delay_ms,
                    }
                )
        elif self.path == "/_dump":
            with s.lock:
                self._json([[k[0], k[1], k[2], len(v)] for k, v in s.keys.items()])
        else:
            self._json({"error": "not found"}, 404)

    def do_POST(self) -> None:
        s = self.state
        body = self._body()
        if self.path == "/_control":
            data = json.loads(body or b"{}")
            s.delay_ms = float(data.get("delay_ms", s.delay_ms))
            s.status = int(data.get("status", s.status))
            self._json({"delay_ms": s.delay_ms, "status": s.status})
            return
        if self.path == "/_reset":
            s.reset()
            self._json({"ok": True})
            return
        if s.delay_ms:
            time.sleep(s.delay_ms / 1000)
        msg_id = self.headers.get("webhook-id") or ""
        try:
            payload = json.loads(body)
            data = payload.get("data") or {}
            key = (data.get("id"), payload.get("type"), data.get("status_version"))
        except (ValueError, AttributeError):
            key = (None, None, None)
        now = time.time()
        with s.lock:
            s.hits += 1
            s.ids[msg_id] = s.ids.get(msg_id, 0) + 1
            s.keys.setdefault(key, set()).add(msg_id)
            s.first_at = s.first_at or now
            s.last_at = now
        self._json({"received": True}, s.status)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    Handler.state = State(args.delay_ms)
    ThreadingHTTPServer.request_queue_size = 1024
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"receiver listening on http://127.0.0.1:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
