"""The notify-URL guard: no merchant can point PayBridge's notifications at PayBridge's own
network — not when the URL is saved, not at delivery, not by a name that fails to resolve, nor
one that resolves elsewhere between the check and the connection (rebinding). Private networks
of on-premises client apps are allowed only by NOTIFY_ALLOWED_NETWORKS.

A notification endpoint's URL is saved through the CLI (`flask merchants create --notify-url`),
the dashboard's endpoints page and the API (`/api/v1/notification_endpoints`), and all three
check it (one function: app/notifications/endpoints.py): the tests below cover each, and
delivery.
"""

from __future__ import annotations

import ipaddress
import ssl
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import trustme
from sqlalchemy import select

from app.extensions import db
from app.models import (
    Merchant,
    Notification,
    NotificationAttempt,
    NotificationEndpoint,
    PaymentStatus,
    StatusSource,
)
from app.notifications.delivery import Claim, DeliveryOptions, attempt
from app.notifications.targets import (
    PinnedAdapter,
    TargetRefused,
    check_target,
    parse_networks,
    pin,
)
from app.payments.state import lock_payment, transition
from tests.support.api import auth_headers
from tests.support.factories import FINAL_NEWS, make_payment
from tests.support.pages import token_for
from tests.support.rows import get_rows

LOOPBACK = parse_networks("127.0.0.0/8")

# Every way of writing "PayBridge's own network" we know of, with what the refusal says. `{port}`
# is a live receiver's: were any of them sent, it would count the hit.
BYPASSES = [
    ("http://127.0.0.1:{port}/notify", "a loopback address (127.0.0.1)"),
    ("http://127.1:{port}/notify", "a loopback address (127.0.0.1)"),
    ("http://2130706433:{port}/notify", "a loopback address (127.0.0.1)"),
    ("http://0x7f.1:{port}/notify", "a loopback address (127.0.0.1)"),
    ("http://localhost:{port}/notify", "names 'localhost': this machine"),
    ("http://localhost.:{port}/notify", "names 'localhost': this machine"),
    ("http://LocalHost.:{port}/notify", "names 'localhost': this machine"),
    ("http://app.localhost:{port}/notify", "names 'app.localhost': this machine"),
    ("http://[::1]:{port}/notify", "a loopback address (::1)"),
    ("http://[::ffff:127.0.0.1]:{port}/notify", "a loopback address in an IPv6 form"),
    ("http://[64:ff9b::7f00:1]:{port}/notify", "a loopback address in an IPv6 form"),
    ("http://[64:ff9b:1::a00:1]:{port}/notify", "a local-use NAT64 address"),
    ("http://[::127.0.0.1]:{port}/notify", "a loopback address in an IPv6 form"),
    ("http://[2002:7f00:1::]:{port}/notify", "a loopback address in an IPv6 form"),
    ("http://0.0.0.0:{port}/notify", "an unspecified address (0.0.0.0)"),
    ("http://[::]:{port}/notify", "an unspecified address (::)"),
    ("http://10.1.2.3/notify", "a private address (10.1.2.3)"),
    ("http://172.16.0.9/notify", "a private address (172.16.0.9)"),
    ("http://192.168.1.1/notify", "a private address (192.168.1.1)"),
    ("http://[fd00::1]/notify", "a private address (fd00::1)"),
    ("http://100.64.0.1/notify", "a non-public address (100.64.0.1)"),
    ("http://169.254.169.254/latest/meta-data", "a link-local address (169.254.169.254)"),
    ("http://[fe80::1]/notify", "a link-local address (fe80::1)"),
    ("http://224.0.0.1/notify", "a multicast address (224.0.0.1)"),
    ("http://[ff02::1]/notify", "a multicast address (ff02::1)"),
    ("http://240.0.0.1/notify", "(240.0.0.1)"),
    ("http://does-not-exist.invalid/notify", "'does-not-exist.invalid' does not resolve"),
]


@pytest.fixture
def allowed_networks(app):
    """Set NOTIFY_ALLOWED_NETWORKS for one test (production's default: none)."""
    saved = app.config["NOTIFY_ALLOWED_NETWORKS"]

    def allow(*networks: str) -> None:
        app.config["NOTIFY_ALLOWED_NETWORKS"] = list(networks)

    allow()
    yield allow
    app.config["NOTIFY_ALLOWED_NETWORKS"] = saved


def _port(receiver) -> int:
    return int(receiver.url.rsplit(":", 1)[1].split("/", 1)[0])


def _finish_payment(app, merchant_id: int) -> int:
    """A payment made SUCCESS as a webhook does; the id of the notification it wrote."""
    payment_id = make_payment(app, merchant_id, PaymentStatus.INITIATED, amount=2500).id
    with app.app_context():
        transition(lock_payment(payment_id), PaymentStatus.SUCCESS, source=StatusSource.WEBHOOK)
        db.session.commit()
        return db.session.scalar(
            select(Notification.id).where(Notification.payment_id == payment_id, FINAL_NEWS)
        )


# -- when the URL is saved ------------------------------------------------------------------------


def test_the_dashboard_refuses_to_save_each_bypass(
    app, client_a, tenants, receiver, allowed_networks
):
    token = token_for(client_a, "/dashboard/notification-endpoints")
    for template, why in BYPASSES:
        url = template.format(port=_port(receiver))
        response = client_a.post(
            "/dashboard/notification-endpoints",
            data={"url": url, "all_events": "y", "csrf_token": token},
        )
        page = response.get_data(as_text=True)
        assert response.status_code == 400, url
        assert "The URL is refused" in page and why.replace("'", "&#39;") in page, url
        assert "NOTIFY_ALLOWED_NETWORKS" in page
    with app.app_context():
        urls = db.session.scalars(
            select(NotificationEndpoint.url).where(NotificationEndpoint.merchant_id == tenants.a_id)
        ).all()
    assert urls == ["https://a.example/notify"] * 2


def test_the_cli_refuses_to_create_a_merchant_with_each_bypass(app, runner, allowed_networks):
    for template, why in BYPASSES:
        url = template.format(port=8000)
        result = runner.invoke(args=["merchants", "create", "Shop", "--notify-url", url])
        assert result.exit_code == 2, (url, result.output)
        assert "--notify-url" in result.output and why in result.output, url
    with app.app_context():
        assert db.session.scalars(select(Merchant)).all() == []


def test_an_allowed_network_can_be_saved_and_only_that_one(app, runner, allowed_networks):
    allowed_networks("10.0.0.0/8")
    refused = runner.invoke(args=["merchants", "create", "A", "--notify-url", "http://127.0.0.1/n"])
    assert refused.exit_code == 2 and "a loopback address (127.0.0.1)" in refused.output

    allowed_networks("127.0.0.0/8")
    saved = runner.invoke(args=["merchants", "create", "B", "--notify-url", "http://127.0.0.1/n"])
    assert saved.exit_code == 0, saved.output
    mapped = "http://[::ffff:127.0.0.1]/n"  # the same address, in its IPv6 form
    assert runner.invoke(args=["merchants", "create", "C", "--notify-url", mapped]).exit_code == 0
    with app.app_context():
        assert db.session.scalars(select(Merchant.name).order_by(Merchant.id)).all() == ["B", "C"]


# -- at delivery ----------------------------------------------------------------------------------


def test_a_delivery_to_each_bypass_is_a_failed_attempt_with_the_reason_and_sends_nothing(
    app, make_merchant, receiver, worker, allowed_networks
):
    # URLs saved before the guard existed, or names whose addresses changed since.
    expected = {}
    for template, why in BYPASSES:
        merchant, _ = make_merchant(notify_url=template.format(port=_port(receiver)))
        expected[_finish_payment(app, merchant.id)] = why

    def all_attempted():
        ids = list(expected)
        rows = db.session.scalars(select(Notification).where(Notification.id.in_(ids))).all()
        return all(n.attempt_count >= 1 for n in rows)

    worker.run_until(all_attempted, what="an attempt at every bypass")
    for notification_id, why in expected.items():
        [first] = get_rows(app, NotificationAttempt, notification_id=notification_id)[:1]
        assert first.status_code is None
        assert first.error.startswith("URL refused: ") and why in first.error
    assert receiver.hits == 0


def test_an_allowed_network_is_delivered_to(app, make_merchant, receiver, worker, allowed_networks):
    allowed_networks("127.0.0.0/8")
    merchant, _ = make_merchant(notify_url=receiver.url)
    notification_id = _finish_payment(app, merchant.id)

    worker.run_until(
        lambda: db.session.get(Notification, notification_id).status == "delivered",
        what="delivery to the allowed network",
    )
    assert len(receiver.requests) == 1


# -- rebinding: the connection goes to the address that was checked --------------------------------


class Flipping:
    """A resolver that answers one address to its first question and another to the rest,
    as a rebinding attacker's DNS server does (public first, then loopback)."""

    def __init__(self, first: str, then: str) -> None:
        self.answers = [first, then]
        self.calls = 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        return [self.answers[min(self.calls - 1, 1)]]


def test_the_target_is_pinned_to_the_address_the_check_resolved():
    resolver = Flipping("93.184.215.14", "127.0.0.1")

    target = check_target("https://rebind.example/hook?x=1", resolver=resolver)

    assert resolver.calls == 1
    assert target.addresses == (ipaddress.ip_address("93.184.215.14"),)
    assert target.pinned_url(target.url) == "https://93.184.215.14:443/hook?x=1"
    assert target.host_header == "rebind.example" and target.hostname == "rebind.example"
    # The attacker's second answer is refused whenever it is what a check sees.
    with pytest.raises(TargetRefused, match=r"a loopback address \(127.0.0.1\)"):
        check_target("https://rebind.example/hook", resolver=resolver)


def test_one_forbidden_address_among_the_answers_refuses_the_url():
    with pytest.raises(TargetRefused, match="a private address"):
        check_target("https://mixed.example/", resolver=lambda h, p: ["93.184.215.14", "10.0.0.1"])


def test_a_resolver_error_refuses_the_url():
    def broken(host: str, port: int) -> list[str]:
        raise OSError("SERVFAIL")

    with pytest.raises(TargetRefused, match="does not resolve"):
        check_target("https://flaky.example/", resolver=broken)


def _claim(url: str) -> Claim:
    return Claim(
        1, 1, 1, 0, "msg_pinning_test", {"type": "test"}, url, ("whsec_dGVzdA==",), datetime.now()
    )


def test_a_delivery_connects_to_the_checked_address_without_resolving_again(receiver):
    # No resolver of this machine knows the name; only the check's answer can reach the receiver.
    url = f"http://rebind.paybridge.test:{_port(receiver)}/notify"
    resolver = Flipping("127.0.0.1", "10.66.66.66")
    options = DeliveryOptions(timeout=2.0, allowed_networks=LOOPBACK, resolver=resolver)

    result = attempt(_claim(url), options)

    assert (result.ok, result.status_code, result.error) == (True, 200, None)
    assert resolver.calls == 1
    [received] = receiver.requests
    assert received.headers["Host"] == f"rebind.paybridge.test:{_port(receiver)}"
    assert received.headers["webhook-id"] == "msg_pinning_test"


def test_a_pinned_https_request_verifies_the_certificate_for_the_host_name(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("notify.paybridge.test")
    seen = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            seen["host"] = self.headers["Host"]
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)

    def note_sni(sock, name, ctx) -> None:
        seen["sni"] = name

    context.sni_callback = note_sni
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    port = server.server_address[1]
    session = requests.Session()
    session.mount("https://", PinnedAdapter())

    def post(host: str):
        target = check_target(
            f"https://{host}:{port}/n",
            allowed_networks=LOOPBACK,
            resolver=lambda h, p: ["127.0.0.1"],
        )
        prepared = pin(session.prepare_request(requests.Request("POST", target.url)), target)
        return session.send(prepared, verify=str(ca_file), timeout=5)

    try:
        assert post("notify.paybridge.test").status_code == 204
        assert seen == {"host": f"notify.paybridge.test:{port}", "sni": "notify.paybridge.test"}
        # Pinned to the same address under a name the certificate does not carry: refused.
        with pytest.raises(requests.exceptions.SSLError):
            post("other.paybridge.test")
    finally:
        server.shutdown()
        server.server_close()


def test_a_request_without_a_checked_target_is_never_sent(receiver):
    session = requests.Session()
    session.mount("http://", PinnedAdapter())
    with pytest.raises(TargetRefused):
        session.post(receiver.url, data=b"{}", timeout=2)
    assert receiver.hits == 0


# -- the rules, one address at a time -------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "allowed", "refused"),
    [
        ("8.8.8.8", "", False),
        ("2606:4700:4700::1111", "", False),
        ("64:ff9b::808:808", "", False),  # NAT64 form of a public address
        ("127.0.0.1", "", True),
        ("127.0.0.1", "127.0.0.0/8", False),
        ("::ffff:127.0.0.1", "127.0.0.0/8", False),
        ("64:ff9b::7f00:1", "127.0.0.0/8", False),
        ("10.20.1.2", "10.20.0.0/16", False),
        ("10.21.1.2", "10.20.0.0/16", True),
        ("fd00:20::5", "fd00:20::/32", False),
        ("fd00:21::5", "fd00:20::/32", True),
        ("169.254.169.254", "10.0.0.0/8", True),
    ],
)
def test_address_rules(address, allowed, refused):
    url = f"http://[{address}]/n" if ":" in address else f"http://{address}/n"
    networks = parse_networks(allowed)
    if refused:
        with pytest.raises(TargetRefused):
            check_target(url, allowed_networks=networks)
    else:
        assert check_target(url, allowed_networks=networks).address == ipaddress.ip_address(address)


def test_the_api_refuses_to_save_each_bypass(
    app, client, make_merchant, receiver, allowed_networks
):
    """The API's endpoint URLs go through the same check: each bypass is a 400 that says why,
    and nothing is stored."""
    merchant, key = make_merchant(notify_url=None)
    for template, why in BYPASSES:
        url = template.format(port=_port(receiver))
        response = client.post(
            "/api/v1/notification_endpoints",
            json={"url": url, "enabled_events": ["*"]},
            headers=auth_headers(key),
        )
        assert response.status_code == 400, url
        error = response.get_json()["error"]
        assert error["code"] == "VALIDATION_ERROR" and why in str(error), (url, error)
    with app.app_context():
        stored = db.session.scalars(
            select(NotificationEndpoint).where(NotificationEndpoint.merchant_id == merchant.id)
        ).all()
    assert stored == []
