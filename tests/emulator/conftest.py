"""Fixtures: one emulator subprocess per module, reset before each test, and a webhook receiver."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import stripe

from stripe_emulator.testing import run_emulator
from tests.support.waiting import wait_until

SECRET = "whsec_test_cli_secret"
# Stripe's sample of every object: fixtures3.json from Stripe's public stripe/openapi
# repository, vendored unchanged (data/README.md says why).
FIXTURES_PATH = Path(__file__).resolve().parent / "data" / "fixtures3.json"


@pytest.fixture(scope="session")
def stripe_fixtures() -> dict:
    """``fixtures3.json`` → ``resources``: Stripe's sample object of each kind, by name."""
    return json.loads(FIXTURES_PATH.read_text(encoding="utf-8"))["resources"]


class Receiver:
    """A real local HTTP endpoint that records webhook POSTs and answers scripted statuses."""

    def __init__(self, secret: str | None = SECRET) -> None:
        self.secret = secret  # like a real app: answer 400 when the signature does not verify
        self.requests: list[dict] = []
        self.statuses: list[int] = []  # consumed one per request; then 200
        self.delays: list[float] = []  # seconds to hold each request before answering; then 0
        self.gate: threading.Event | None = None  # while set to an unset Event, hold answers
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    delay = receiver.delays.pop(0) if receiver.delays else 0.0
                    gate = receiver.gate
                    if receiver.secret and not _verifies(body, self.headers, receiver.secret):
                        status = 400
                    record = {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": body,
                        "status": status,
                        "received_at": time.monotonic(),
                        "answered_at": None,
                    }
                    receiver.requests.append(record)
                if delay:
                    time.sleep(delay)
                if gate is not None:
                    gate.wait(15)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender gave up waiting (its timeout) and hung up
                    pass
                record["answered_at"] = time.monotonic()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[dict]:
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests]

    def wait_for(self, predicate, timeout: float = 10.0) -> list[dict]:
        """Until some received request matches `predicate`; those that do."""

        def found():
            with self.lock:
                return [r for r in self.requests if predicate(r)]

        return wait_until(
            found,
            what="a matching webhook",
            timeout=timeout,
            interval=0.02,
            details=lambda: f"got {self.requests}",
        )

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.statuses.clear()
            self.delays.clear()
            if self.gate is not None:
                self.gate.set()
            self.gate = None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _verifies(body: bytes, headers, secret: str) -> bool:
    try:
        stripe.WebhookSignature.verify_header(
            body.decode(), headers.get("Stripe-Signature"), secret, tolerance=300
        )
        return True
    except stripe.SignatureVerificationError:
        return False


def event_type(req: dict) -> str:
    return json.loads(req["body"])["type"]


@pytest.fixture(scope="session")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="session")
def emulator_process(receiver):
    with run_emulator(
        webhooks=[(receiver.url, SECRET)], retry_schedule="0.1,0.2,0.3", async_delay=5
    ) as emu:
        yield emu


@pytest.fixture
def emu(emulator_process, receiver):
    emulator_process.control("POST", "reset")
    receiver.clear()
    return emulator_process


@pytest.fixture
def client(emu) -> stripe.StripeClient:
    return stripe.StripeClient(emu.api_key, base_addresses={"api": emu.url}, max_network_retries=0)


def session_params(**overrides) -> dict:
    params = {
        "mode": "payment",
        "success_url": "http://shop.test/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://shop.test/cancel",
        "line_items": [
            {
                "price_data": {
                    "currency": "usd",
                    "unit_amount": 1999,
                    "product_data": {"name": "Widget"},
                },
                "quantity": 2,
            }
        ],
    }
    params.update(overrides)
    return params
