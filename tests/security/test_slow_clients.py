"""Slow clients do not starve the web tier. The production stack — gunicorn with
gunicorn.conf.py and PAYBRIDGE_ENV=production, the Procfile's gthread model (one process of four
threads here), behind Debian's nginx configured by the repository's deploy/nginx/paybridge.conf —
answers /healthz and an authenticated API call while 160 clients each declare a large body and
send it a byte every two seconds and 40 more drip their headers; once they stall, nginx cuts them
off. Straight against gunicorn, as many such clients as it has threads hold them all (shown
here with two)."""

from __future__ import annotations

import http.client
import os
import re
import runpy
import select
import socket
import ssl
import threading
from urllib.parse import urlencode

import pytest
import requests

from app.config import Config, environment_variables
from app.extensions import db
from app.models import AuditLog
from tests.support.factories import make_merchant, make_user
from tests.support.gunicorn import ROOT, running_gunicorn
from tests.support.nginx import (
    DEBIAN_MAIN_CONFIG,
    NGINX,
    TEMPLATE,
    RunningNginx,
    check_inside_debians_config,
    render_site,
    running_nginx,
    site_values,
    tls_certificate,
)
from tests.support.production import safe_production_settings
from tests.support.waiting import wait_until

pytestmark = pytest.mark.skipif(
    not os.access(NGINX, os.X_OK), reason="Debian's nginx is missing: run scripts/setup.sh"
)

SLOW_BODIES = 160
SLOW_HEADERS = 40
DRIP_SECONDS = 2.0  # well under the template's client_body_timeout (10 s)
DECLARED_BODY = 500_000  # bytes: under client_max_body_size, never sent
PROBE_TIMEOUT = 15  # seconds: generous; starved, these requests would wait for as long as
# the slow clients last


def production_environment(app) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if k not in environment_variables()},
        **safe_production_settings(app.config["SQLALCHEMY_DATABASE_URI"]),
        "PAYBRIDGE_ENV": "production",
        "REDIS_URL": app.config["REDIS_URL"],
        "RATELIMIT_STORAGE_URI": app.config["REDIS_URL"],
        "PROXY_FIX_HOPS": "1",  # nginx is the one proxy in front
        # Production checks Stripe as it starts: the suite's Stripe is the emulator.
        "STRIPE_API_BASE": app.config["STRIPE_API_BASE"],
    }


@pytest.fixture(scope="module")
def production_stack(app):
    """gunicorn in production behind nginx: (nginx, gunicorn's own URL)."""
    gthread = ("--worker-class", "gthread", "--threads", "4")
    with running_gunicorn(production_environment(app), workers=1, extra=gthread) as gunicorn_url:
        with running_nginx(gunicorn_url.removeprefix("http://")) as nginx:
            yield nginx, gunicorn_url


class SlowClient:
    """One TLS connection to nginx that sends its request a little at a time."""

    def __init__(self, nginx: RunningNginx, context: ssl.SSLContext, head: str) -> None:
        raw = socket.create_connection(("127.0.0.1", nginx.port), timeout=10)
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        self.sock.sendall(head.encode())
        self.ended: str | None = None  # how nginx ended it: "closed" or its answer's status line

    def drip(self, data: bytes) -> None:
        if self.ended is None:
            try:
                self.sock.sendall(data)
            except OSError:
                self.ended = "closed"

    def check_ended(self) -> bool:
        """Whether nginx has answered or closed this connection (without waiting for it)."""
        if self.ended is None and select.select([self.sock], [], [], 0)[0]:
            self.sock.settimeout(0)  # readable may mean TLS housekeeping (session tickets) only
            try:
                data = self.sock.recv(4096)
            except ssl.SSLWantReadError:
                return False  # no answer yet
            except OSError:
                data = b""
            finally:
                self.sock.settimeout(10)
            self.ended = data.split(b"\r\n", 1)[0].decode(errors="replace") if data else "closed"
        return self.ended is not None

    def close(self) -> None:
        self.sock.close()


class Dripper(threading.Thread):
    """Every DRIP_SECONDS, one more byte of each slow body and one more header of each slow
    head, until stopped."""

    def __init__(self, bodies: list[SlowClient], heads: list[SlowClient]) -> None:
        super().__init__(daemon=True)
        self.bodies, self.heads = bodies, heads
        self.rounds = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(DRIP_SECONDS):
            for client in self.bodies:
                client.drip(b" ")
            for number, client in enumerate(self.heads):
                client.drip(f"X-Slow-{self.rounds}-{number}: still coming\r\n".encode())
            self.rounds += 1


def test_slow_clients_neither_starve_health_checks_nor_the_api(production_stack, app):
    nginx, _ = production_stack
    _, api_key = make_merchant(app, "Shop", "http://127.0.0.1:9/notify")
    auth = {"Authorization": f"Bearer {api_key}"}
    context = ssl.create_default_context(cafile=str(nginx.ca))

    body_head = (
        "POST /api/v1/payments HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {DECLARED_BODY}\r\n\r\n{{"
    )
    header_head = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    bodies = [SlowClient(nginx, context, body_head) for _ in range(SLOW_BODIES)]
    heads = [SlowClient(nginx, context, header_head) for _ in range(SLOW_HEADERS)]
    dripper = Dripper(bodies, heads)
    dripper.start()
    try:
        wait_until(lambda: dripper.rounds >= 2, what="two rounds of drips", timeout=30)

        for _ in range(5):
            health = requests.get(f"{nginx.url}/healthz", verify=str(nginx.ca), timeout=15)
            listed = requests.get(
                f"{nginx.url}/api/v1/payments", headers=auth, verify=str(nginx.ca), timeout=15
            )
            assert health.status_code == 200, health.text
            assert listed.status_code == 200, listed.text
            assert listed.json()["data"] == []
        # ...while every slow body was still connected, kept alive by its drip.
        still_open = [client for client in bodies if not client.check_ended()]
        assert len(still_open) == SLOW_BODIES, [c.ended for c in bodies if c.ended][:5]

        # A stalled client is cut off once its timeout passes: a head after
        # client_header_timeout however it drips, a body client_body_timeout after its last byte.
        dripper.halt.set()
        dripper.join(10)
        wait_until(
            lambda: all(client.check_ended() for client in bodies + heads),
            what="nginx to cut off every stalled client",
            timeout=45,
            interval=0.5,
            details=lambda: f"{sum(c.ended is None for c in bodies + heads)} still open",
        )
    finally:
        dripper.halt.set()
        for client in bodies + heads:
            client.close()
    endings = {client.ended for client in bodies + heads}
    assert endings <= {"closed", "HTTP/1.1 408 Request Time-out"}, endings
    # None of them reached PayBridge: nothing was created, and it still answers.
    listed = requests.get(f"{nginx.url}/api/v1/payments", headers=auth, verify=str(nginx.ca))
    assert listed.status_code == 200 and listed.json()["data"] == []


def test_without_nginx_a_few_slow_clients_starve_gunicorn(app):
    """Why nginx is there, and proof the attack above bites: straight against gunicorn (one
    process of two threads), two clients that send half their headers and wait hold both
    threads, and /healthz gets no answer until they leave."""
    gthread = ("--worker-class", "gthread", "--threads", "2")
    with running_gunicorn(production_environment(app), workers=1, extra=gthread) as url:
        port = int(url.rsplit(":", 1)[1])
        slow = []
        for _ in range(2):
            client = socket.create_connection(("127.0.0.1", port), timeout=10)
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            slow.append(client)
        try:
            with pytest.raises(requests.exceptions.Timeout):
                requests.get(f"{url}/healthz", timeout=5)
        finally:
            for client in slow:
                client.close()
        # Gone, they free the threads: gunicorn itself was never broken.
        wait_until(lambda: requests.get(f"{url}/healthz", timeout=5).ok, what="gunicorn answers")


def test_nginx_refuses_a_body_over_the_apps_limit_in_the_api_error_shape(production_stack):
    nginx, _ = production_stack
    response = requests.post(
        f"{nginx.url}/api/v1/payments",
        data=b"{" + b" " * Config.MAX_CONTENT_LENGTH + b"}",
        headers={"Content-Type": "application/json"},
        verify=str(nginx.ca),
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert_protected(response)


@pytest.mark.parametrize(
    ("scheme", "headers"),
    [("https", {"X-Big": "x" * 10_000}), ("http", {})],
    ids=["header over 8 KiB", "plain HTTP to the HTTPS port"],
)
def test_nginx_refuses_malformed_requests_in_the_api_error_shape(production_stack, scheme, headers):
    nginx, _ = production_stack
    url = f"{scheme}://{nginx.url.split('://', 1)[1]}/healthz"
    response = requests.get(url, headers=headers, verify=str(nginx.ca), timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"
    assert_protected(response)


def test_plain_http_is_sent_to_the_https_port_nginx_listens_on(production_stack):
    nginx, _ = production_stack
    url = f"http://127.0.0.1:{nginx.http_port}/dashboard/login?next=%2Fdashboard"
    response = requests.get(url, allow_redirects=False, timeout=30)
    assert response.status_code == 301
    assert response.headers["Location"] == f"{nginx.url}/dashboard/login?next=%2Fdashboard"
    assert_protected(response)


def assert_protected(response: requests.Response) -> None:
    """An answer nginx wrote itself carries the protections PayBridge puts on its own."""
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_gunicorn_listens_to_this_machine_only_unless_told():
    """nginx in front is the way in: a gunicorn port open to others would let anyone skip its
    slow-client cut-offs and forge the X-Forwarded-* headers PROXY_FIX_HOPS trusts."""
    web = next(ln for ln in (ROOT / "Procfile").read_text().splitlines() if ln.startswith("web:"))
    assert "--bind ${WEB_BIND:-127.0.0.1}:${PORT:-5000}" in web


def test_the_recipes_limits_agree_with_the_apps():
    site = TEMPLATE.read_text()
    assert "client_max_body_size 1m;" in site and Config.MAX_CONTENT_LENGTH == 1024 * 1024
    assert "proxy_request_buffering on;" in site
    assert "Strict-Transport-Security" not in site.replace("# Strict-Transport-Security", ""), (
        "HSTS comes from the app (app/security_headers.py): setting it here too sends it twice"
    )
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    # nginx's large_client_header_buffers 4 8k: 8 KiB per line, so gunicorn accepts what passes.
    assert conf["limit_request_line"] == conf["limit_request_field_size"] == 8190
    assert conf["limit_request_fields"] == 100
    assert conf["timeout"] == 60


@pytest.mark.skipif(
    os.geteuid() != 0 or not DEBIAN_MAIN_CONFIG.exists(),
    reason="nginx -t of Debian's own nginx.conf reads root's files",
)
def test_the_site_fits_inside_debians_nginx_conf(tmp_path):
    cert, key, _ca = tls_certificate(tmp_path)
    site = render_site(site_values("127.0.0.1:8000", cert, key))
    checked = check_inside_debians_config(site, tmp_path)
    assert checked.returncode == 0, checked.stderr


def test_paybridge_sees_the_client_nginx_saw_not_the_one_it_claims(production_stack, app):
    """PROXY_FIX_HOPS=1 trusts the one address nginx appends to X-Forwarded-For: a client at
    127.0.0.2 that claims to be 203.0.113.66 is audited as 127.0.0.2 (without the proxy fix it
    would be nginx's own 127.0.0.1). The dashboard's HTTPS form post also passes its CSRF check
    through nginx (the Referer matches the forwarded host and port)."""
    nginx, _ = production_stack
    merchant, _ = make_merchant(app, "Shop", "http://127.0.0.1:9/notify")
    make_user(app, merchant.id, "ops@shop.example")
    context = ssl.create_default_context(cafile=str(nginx.ca))

    def call(method: str, path: str, body: str | None = None, **headers: str):
        connection = http.client.HTTPSConnection(
            "127.0.0.1", nginx.port, context=context, source_address=("127.0.0.2", 0), timeout=15
        )
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response, response.read().decode()
        finally:
            connection.close()

    page, html = call("GET", "/dashboard/login")
    assert page.status == 200, html[:300]
    cookie = page.getheader("Set-Cookie").split(";", 1)[0]
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    form = urlencode({"csrf_token": token, "email": "ops@shop.example", "password": "wrong!"})
    answer, text = call(
        "POST",
        "/dashboard/login",
        form,
        **{
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": cookie,
            "Referer": f"{nginx.url}/dashboard/login",
            "X-Forwarded-For": "203.0.113.66",
        },
    )
    # Refused for the password, not for CSRF: the form again, saying so.
    assert answer.status == 401 and "the password is wrong" in text, text[:500]
    with app.app_context():
        entries = db.session.scalars(db.select(AuditLog).where(AuditLog.action == "login_failed"))
        assert [entry.ip for entry in entries] == ["127.0.0.2"]
