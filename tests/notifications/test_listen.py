"""`python -m paybridge_listen` / `flask notifications listen`: a real payment's events, pulled
through the Events API over HTTP and forwarded, signed, to a local receiver that verifies them
with the `standardwebhooks` package; retries, the API going away, and refusals."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.extensions import db
from app.models import Notification, utcnow
from paybridge_listen import EventFeed, Forwarder, Listener, load_or_create_secret
from tests.notifications.test_client_sample import load_sample
from tests.support.api import auth_headers, create_body
from tests.support.factories import new_reference
from tests.support.live_server import LiveServer
from tests.support.processes import stop_process
from tests.support.psp import pay_session
from tests.support.tcp_proxy import tcp_proxy
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class VerifyingReceiver:
    """A local client app's hook: verifies every POST with `standardwebhooks` (400 when it
    does not), answers the statuses queued in `fail_first` first, then 204."""

    secret: str
    fail_first: list[int] = field(default_factory=list)
    verified: list[dict] = field(default_factory=list)  # the bodies that verified, in order
    answers: list[tuple[str, int]] = field(default_factory=list)  # (webhook-id, status)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def start(self) -> VerifyingReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    message = Webhook(receiver.secret).verify(body, dict(self.headers.items()))
                except WebhookVerificationError:
                    message, status = None, 400
                with receiver._lock:
                    if message is not None:
                        status = receiver.fail_first.pop(0) if receiver.fail_first else 204
                        if status == 204:
                            receiver.verified.append(message)
                    receiver.answers.append((self.headers.get("webhook-id"), status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def ids(self) -> list[str]:
        with self._lock:
            return [message["id"] for message in self.verified]


@pytest.fixture
def local_hook(tmp_path):
    """The developer's receiver, verifying with the listener's secret of this machine."""
    secret = load_or_create_secret(tmp_path / "listen-secret")
    receiver = VerifyingReceiver(secret).start()
    yield receiver
    receiver.stop()


@dataclass
class Output:
    lines: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(line)

    def has(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))


def pay_through_the_api(live_server, emulator, key: str) -> dict:
    """A payment created over HTTP, paid at the emulator's checkout: SUCCESS, as the API says."""
    created = requests.post(
        f"{live_server.url}/api/v1/payments",
        json=create_body(merchant_reference=new_reference(), amount=3100),
        headers=auth_headers(key, new_reference("idem")),
        timeout=30,
    )
    assert created.status_code == 201, created.text
    payment = created.json()
    pay_session(emulator, payment["psp_session_id"])

    def succeeded():
        now = requests.get(
            f"{live_server.url}/api/v1/payments/{payment['id']}",
            headers=auth_headers(key),
            timeout=10,
        ).json()
        return now if now["status"] == "SUCCESS" else None

    return wait_until(succeeded, what="the payment to succeed", timeout=20)


def test_listen_forwards_a_real_payments_events_signed_once_each_and_nothing_from_before(
    app, live_server, stripe_delivers, make_merchant, paid_payment, local_hook, tmp_path
):
    merchant, key = make_merchant()
    earlier = paid_payment(merchant.id)  # its events were written before the start
    with app.app_context():
        notes = db.session.scalars(
            db.select(Notification).where(Notification.payment_id == earlier.id)
        ).all()
        for note in notes:
            note.created_at = utcnow() - timedelta(minutes=5)
        db.session.commit()

    listener = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "paybridge_listen",
            "--api-key",
            key,
            "--forward-to",
            local_hook.url,
            "--api-base",
            live_server.url,
            "--secret-file",
            str(tmp_path / "listen-secret"),
            "--interval",
            "0.2",
        ],
        cwd=ROOT,
        env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = Output()
    reader = threading.Thread(
        target=lambda: [output.say(line.rstrip()) for line in listener.stdout], daemon=True
    )
    reader.start()
    try:
        wait_until(
            lambda: output.has("Ready!"),
            what="the listener's first poll",
            timeout=20,
            details=lambda: output.lines,
        )
        payment = pay_through_the_api(live_server, stripe_delivers, key)
        wait_until(
            lambda: len(local_hook.ids()) >= 2,
            what="payment.initiated and .succeeded forwarded",
            timeout=20,
            details=lambda: output.lines,
        )
        refund = requests.post(
            f"{live_server.url}/api/v1/payments/{payment['id']}/refunds",
            json={"amount": 1000},
            headers=auth_headers(key, new_reference("idem")),
            timeout=30,
        )
        assert refund.status_code == 201, refund.text
        wait_until(
            lambda: len(local_hook.ids()) >= 3,
            what="refund.succeeded forwarded",
            timeout=20,
            details=lambda: output.lines,
        )
    finally:
        stop_process(listener)
    reader.join(5)

    secret = load_or_create_secret(tmp_path / "listen-secret")
    assert output.has(f"Your webhook signing secret is {secret}")
    # Each event once, oldest first, verified; the one from before the start never.
    types = [(m["type"], m["data"]["id"]) for m in local_hook.verified]
    assert types == [
        ("payment.initiated", payment["id"]),
        ("payment.succeeded", payment["id"]),
        ("refund.succeeded", refund.json()["id"]),
    ]
    assert len(set(local_hook.ids())) == 3
    assert all(status == 204 for _, status in local_hook.answers)
    # The bodies are exactly the events' (the notification as PayBridge delivers it).
    for message in local_hook.verified:
        event = requests.get(
            f"{live_server.url}/api/v1/events/{message['id']}",
            headers=auth_headers(key),
            timeout=10,
        ).json()
        assert message == {k: v for k, v in event.items() if k not in ("object", "created")}
    assert output.has(f"--> payment.succeeded [{local_hook.ids()[1]}]  <-- [204]")


def _listener(live_server, key: str, hook_url: str, secret: str, *, api_base=None, **options):
    output = Output()
    listener = Listener(
        EventFeed(
            api_base or live_server.url, key, since=utcnow() - timedelta(minutes=1), **options
        ),
        Forwarder(hook_url, secret, retries=2, backoff_seconds=0.05),
        say=output.say,
        interval=0.05,
    )
    thread = threading.Thread(target=listener.run, daemon=True)
    return listener, thread, output


def test_a_failed_forward_is_retried_and_a_bad_signature_is_refused_by_the_receiver(
    app, live_server, make_merchant, paid_payment, local_hook, tmp_path
):
    merchant, key = make_merchant()
    local_hook.fail_first = [500, 503]  # two failures, then the third attempt is taken
    paid_payment(merchant.id)
    listener, thread, output = _listener(
        live_server, key, local_hook.url, local_hook.secret, types="payment.succeeded"
    )
    thread.start()
    try:
        wait_until(
            lambda: local_hook.ids(),
            what="the forward to get through",
            details=lambda: output.lines,
        )
        polls = listener.polls
        wait_until(lambda: listener.polls >= polls + 3, what="three more polls")
    finally:
        listener.stop.set()
        thread.join(10)

    [event_id] = local_hook.ids()
    assert [status for _, status in local_hook.answers] == [500, 503, 204]
    assert output.has("<-- [500]") and output.has("(attempt 1, retrying)")
    assert listener.forwarded == 1 and listener.failed == 0

    # Signed with another secret, the receiver refuses it: the signature is real.
    stranger = load_or_create_secret(tmp_path / "another-machine")
    wrong, thread, output = _listener(
        live_server, key, local_hook.url, stranger, types="payment.succeeded"
    )
    thread.start()
    try:
        wait_until(
            lambda: wrong.failed == 1,
            what="the forward to be given up",
            details=lambda: output.lines,
        )
    finally:
        wrong.stop.set()
        thread.join(10)
    assert [status for _, status in local_hook.answers][3:] == [400, 400, 400]
    assert output.has("gave up")


def test_while_the_api_is_down_it_says_so_backs_off_and_catches_up_after(
    app, live_server, make_merchant, paid_payment, local_hook
):
    merchant, key = make_merchant()
    with tcp_proxy("127.0.0.1", live_server.port) as proxy:
        listener, thread, output = _listener(
            live_server,
            key,
            local_hook.url,
            local_hook.secret,
            api_base=proxy.url("http://127.0.0.1:{port}"),
            types="payment.succeeded",
        )
        thread.start()
        try:
            wait_until(lambda: listener.polls >= 1, what="a first poll")
            proxy.cut()
            wait_until(
                lambda: output.has("did not answer"),
                what="the outage to be told",
                details=lambda: output.lines,
            )
            paid = paid_payment(merchant.id)  # written while the listener cannot ask
            refused = proxy.refused
            wait_until(lambda: proxy.refused >= refused + 2, what="it to keep trying")
            proxy.restore()
            wait_until(
                lambda: local_hook.ids(),
                what="the missed event forwarded",
                timeout=40,
                details=lambda: output.lines,
            )
        finally:
            listener.stop.set()
            thread.join(10)

    assert [m["data"]["id"] for m in local_hook.verified] == [paid.public_id]
    assert output.has("PayBridge answers again")
    assert sum("did not answer" in line for line in output.lines) == 1  # told once per outage


def test_the_flask_command_refuses_a_bad_key_and_a_bad_secret_saying_why(
    app, runner, live_server, local_hook, tmp_path
):
    bad_key = runner.invoke(
        args=[
            "notifications",
            "listen",
            "--api-key",
            "pbk_test_nosuchkey",
            "--forward-to",
            local_hook.url,
            "--api-base",
            live_server.url,
            "--secret-file",
            str(tmp_path / "listen-secret"),
        ]
    )
    assert bad_key.exit_code == 2, bad_key.output
    assert "401 INVALID_API_KEY" in bad_key.output

    bad_secret = runner.invoke(
        args=[
            "notifications",
            "listen",
            "--api-key",
            "pbk_test_x",
            "--forward-to",
            local_hook.url,
            "--secret",
            "not-a-secret",
        ]
    )
    assert bad_secret.exit_code == 2 and "whsec_" in bad_secret.output
    assert local_hook.answers == []


def test_the_machines_secret_is_made_once_private_and_kept(tmp_path):
    path = tmp_path / "paybridge" / "listen-secret"
    first = load_or_create_secret(path)
    assert first.startswith("whsec_") and load_or_create_secret(path) == first
    assert path.stat().st_mode & 0o777 == 0o600
    Webhook(first)  # a secret standardwebhooks takes
    path.write_text("nonsense\n")
    with pytest.raises(ValueError, match="delete it"):
        load_or_create_secret(path)


def test_the_documented_client_app_takes_what_listen_forwards(
    app, live_server, make_merchant, paid_payment, tmp_path, monkeypatch
):
    """docs/notifications.md: the sample client app, configured with listen's secret, served
    on a real port, stores the payment listen forwarded to it."""
    merchant, key = make_merchant()
    secret = load_or_create_secret(tmp_path / "listen-secret")
    sample = load_sample(secret, monkeypatch, tmp_path)
    server = LiveServer(sample.app).start()
    payment = paid_payment(merchant.id)
    hook = f"{server.url}/paybridge/notifications"
    listener, thread, output = _listener(live_server, key, hook, secret, types="payment.succeeded")
    thread.start()
    try:
        wait_until(lambda: listener.forwarded == 1, what="a forward", details=lambda: output.lines)
    finally:
        listener.stop.set()
        thread.join(10)
        server.stop()

    assert output.has("<-- [204]")
    stored = sample.db.execute("SELECT id, status FROM payments").fetchall()
    assert stored == [(payment.public_id, "SUCCESS")]
