"""Test events against real receivers: sent now, signed with the endpoint's secret, answered
with the request and the response (API and dashboard); a down receiver, a refused URL and a bad
type each answer clearly; never an event of the Events API; rate limited per merchant."""

from __future__ import annotations

import html as htmllib
from datetime import timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.extensions import db
from app.models import AuditLog, EndpointTestEvent, Notification, NotificationEndpoint, utcnow
from app.notifications.test_events import TEST_EVENTS_PER_MINUTE
from tests.support.api import auth_headers
from tests.support.concurrency import at_once
from tests.support.factories import add_endpoint
from tests.support.pages import csrf_from, logged_in
from tests.support.receiver import Receiver
from tests.support.rows import get_rows

BASE = "/api/v1/notification_endpoints"


def _endpoint(app, merchant_id: int, url: str) -> tuple[str, str]:
    with app.app_context():
        endpoint = add_endpoint(merchant_id, url, ["payment.succeeded"])
        db.session.commit()
        return endpoint.public_id, endpoint.signing_secret


def _test(client, key: str, public_id: str, body=None):
    return client.post(f"{BASE}/{public_id}/test", json=body or {}, headers=auth_headers(key))


def test_a_test_event_is_sent_signed_and_answered_with_request_and_response(
    client, app, make_merchant, receiver, notify_config
):
    merchant, key = make_merchant(notify_url=None)
    public_id, secret = _endpoint(app, merchant.id, receiver.url)
    receiver.extra_headers = {"X-Shop": "got it"}

    answer = _test(client, key, public_id)
    assert answer.status_code == 200, answer.get_json()
    test = answer.get_json()
    assert (test["object"], test["status"], test["type"]) == (
        "notification_endpoint_test",
        "delivered",
        "payment.succeeded",
    )
    assert test["id"].startswith("msg_test_") and test["endpoint_id"] == public_id
    # What the receiver got verifies with the endpoint's secret, and is marked a test.
    [received] = receiver.requests
    sent = Webhook(secret).verify(received.body, received.headers)
    assert sent["id"] == test["id"] == received.headers["webhook-id"]
    assert sent["test"] is True and sent["type"] == "payment.succeeded"
    assert sent["data"]["id"].startswith("pay_test_") and "made up" in sent["data"]["description"]
    # The answer shows both sides: the request as sent, the response as received.
    assert test["request"]["headers"]["webhook-signature"] == received.headers["webhook-signature"]
    assert test["request"]["body"] == received.body.decode()
    assert test["response"]["status"] == 200
    assert test["response"]["headers"]["X-Shop"] == "got it"
    assert isinstance(test["duration_ms"], int) and test["error"] is None

    # Another type, its own kind of data.
    refund = _test(client, key, public_id, {"type": "refund.failed"}).get_json()
    body = receiver.requests[-1].json()
    assert refund["type"] == body["type"] == "refund.failed"
    assert body["data"]["object"] == "refund" and body["data"]["status"] == "failed"

    # Recorded, but never an event: no notification, nothing in the Events API.
    assert len(get_rows(app, EndpointTestEvent, merchant_id=merchant.id)) == 2
    assert get_rows(app, Notification, merchant_id=merchant.id) == []
    events = client.get("/api/v1/events", headers=auth_headers(key)).get_json()
    assert events["data"] == []
    assert client.get(f"/api/v1/events/{test['id']}", headers=auth_headers(key)).status_code == 404


def test_a_down_or_failing_receiver_a_refused_url_and_a_bad_type(
    client, app, make_merchant, receiver, notify_config
):
    merchant, key = make_merchant(notify_url=None)
    down = Receiver().start()
    down_url = down.url
    down.stop()
    down_id, _ = _endpoint(app, merchant.id, down_url)
    failed = _test(client, key, down_id).get_json()
    assert (failed["status"], failed["error"], failed["response"]) == (
        "failed",
        "connection refused",
        None,
    )
    assert failed["request"]["headers"]["webhook-id"] == failed["id"]

    public_id, _ = _endpoint(app, merchant.id, receiver.url)
    receiver.status = 503
    refused_by_app = _test(client, key, public_id).get_json()
    assert refused_by_app["status"] == "failed"
    assert refused_by_app["response"]["status"] == 503
    assert refused_by_app["error"].startswith("HTTP 503")

    # The URL is checked as deliveries check it: with loopback no longer allowed, nothing is sent.
    notify_config["NOTIFY_ALLOWED_NETWORKS"] = []
    hits = receiver.hits
    ssrf = _test(client, key, public_id).get_json()
    assert (ssrf["status"], ssrf["request"], ssrf["response"]) == ("refused", None, None)
    assert "not sent" in ssrf["error"] and "127.0.0.1" in ssrf["error"]
    assert receiver.hits == hits

    for body in ({"type": "payment.exploded"}, {"type": "*"}, {"type": 7}, {"kind": "x"}):
        bad = _test(client, key, public_id, body)
        assert bad.status_code == 400, body
        assert bad.get_json()["error"]["code"] == "VALIDATION_ERROR"
    # Another merchant's endpoint does not exist for this key.
    _, other_key = make_merchant(name="Other", notify_url=None)
    assert _test(client, other_key, public_id).status_code == 404


def test_test_events_are_rate_limited_per_merchant(
    client, app, make_merchant, receiver, notify_config
):
    merchant, key = make_merchant(notify_url=None)
    first, _ = _endpoint(app, merchant.id, receiver.url)
    second, _ = _endpoint(app, merchant.id, receiver.url)
    for n in range(TEST_EVENTS_PER_MINUTE):
        assert _test(client, key, (first, second)[n % 2]).status_code == 200
    limited = _test(client, key, second)
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "RATE_LIMITED"
    assert limited.headers["Retry-After"] == "60"
    assert receiver.hits == TEST_EVENTS_PER_MINUTE
    # Another merchant is not held up by it.
    other, other_key = make_merchant(name="Other", notify_url=None)
    theirs, _ = _endpoint(app, other.id, receiver.url)
    assert _test(client, other_key, theirs).status_code == 200


def test_concurrent_test_events_never_pass_the_rate_limit(
    app, make_merchant, receiver, notify_config
):
    merchant, key = make_merchant(notify_url=None)
    public_id, _ = _endpoint(app, merchant.id, receiver.url)
    # Each request on a client (and so a session and connection) of its own, all at once: a
    # check that counted before another's insert was committed would let more through.
    calls = [
        lambda: _test(app.test_client(), key, public_id).status_code
        for _ in range(TEST_EVENTS_PER_MINUTE + 6)
    ]
    statuses = at_once(calls)
    assert sorted(statuses) == [200] * TEST_EVENTS_PER_MINUTE + [429] * 6
    assert receiver.hits == TEST_EVENTS_PER_MINUTE
    assert len(get_rows(app, EndpointTestEvent, merchant_id=merchant.id)) == TEST_EVENTS_PER_MINUTE


def test_test_events_sign_with_the_previous_secret_only_until_it_expires(
    client, app, make_merchant, receiver, notify_config
):
    merchant, key = make_merchant(notify_url=None)
    public_id, first = _endpoint(app, merchant.id, receiver.url)
    rotate = f"{BASE}/{public_id}/rotate_secret"
    # A grace of an hour: both secrets sign, and the endpoint says until when.
    rotated = client.post(rotate, json={"expires_in": 3600}, headers=auth_headers(key))
    assert rotated.status_code == 200, rotated.get_json()
    second = rotated.get_json()["secret"]
    until = rotated.get_json()["previous_secret_expires_at"]
    shown = client.get(f"{BASE}/{public_id}", headers=auth_headers(key)).get_json()
    assert shown["previous_secret_expires_at"] == until
    stored = get_rows(app, NotificationEndpoint, public_id=public_id)[0]
    assert (
        timedelta(minutes=59)
        < stored.previous_signing_secret_expires_at - utcnow()
        <= (timedelta(hours=1))
    )
    assert _test(client, key, public_id).status_code == 200
    [both] = receiver.requests
    for secret in (first, second):
        assert Webhook(secret).verify(both.body, both.headers)["test"] is True

    # expires_in 0: the previous secret stops now; only the new one verifies.
    again = client.post(rotate, json={"expires_in": 0}, headers=auth_headers(key)).get_json()
    third = again["secret"]
    assert again["previous_secret_expires_at"] is None
    assert _test(client, key, public_id).status_code == 200
    only = receiver.requests[-1]
    assert Webhook(third).verify(only.body, only.headers)["test"] is True
    for stopped in (first, second):
        with pytest.raises(WebhookVerificationError):
            Webhook(stopped).verify(only.body, only.headers)

    # By default it signs NOTIFY_SECRET_ROTATION_GRACE_SECONDS (24 h); at most 24 h can be asked.
    default = client.post(rotate, headers=auth_headers(key)).get_json()
    stored = get_rows(app, NotificationEndpoint, public_id=public_id)[0]
    assert stored.previous_signing_secret == third and default["previous_secret_expires_at"]
    assert timedelta(hours=23, minutes=59) < stored.previous_signing_secret_expires_at - utcnow()
    for bad in (86401, -1, "soon"):
        refused = client.post(rotate, json={"expires_in": bad}, headers=auth_headers(key))
        assert refused.status_code == 400 and refused.get_json()["error"]["param"] == "expires_in"


@pytest.fixture
def owner(app, make_merchant, make_user):
    merchant, _ = make_merchant(notify_url=None)
    make_user(merchant.id, "owner@tests.example")
    return merchant, logged_in(app, "owner@tests.example")


def test_the_dashboard_sends_a_test_event_and_shows_request_and_response(
    app, owner, receiver, notify_config
):
    merchant, client = owner
    public_id, secret = _endpoint(app, merchant.id, receiver.url)
    receiver.extra_headers = {"X-Shop": "got it"}
    page_url = f"/dashboard/notification-endpoints/{public_id}"
    page = client.get(page_url).get_data(as_text=True)
    assert "Send test event" in page
    token = csrf_from(page)
    assert client.post(f"{page_url}/test", data={"type": "dispute.created"}).status_code == 400
    assert receiver.hits == 0  # no CSRF token: nothing sent

    shown = client.post(f"{page_url}/test", data={"type": "dispute.created", "csrf_token": token})
    assert shown.status_code == 200
    html = htmllib.unescape(shown.get_data(as_text=True))
    [received] = receiver.requests
    sent = Webhook(secret).verify(received.body, received.headers)
    assert sent["type"] == "dispute.created" and sent["test"] is True
    assert 'id="test-result"' in html and "HTTP 200" in "".join(html.split("<strong>"))
    assert received.headers["webhook-signature"] in html and "X-Shop: got it" in html
    assert sent["id"] in html and '"test": true' in html
    [entry] = get_rows(app, AuditLog, action="endpoint_test")
    assert entry.detail["type"] == "dispute.created" and entry.detail["id"] == sent["id"]

    bad = client.post(f"{page_url}/test", data={"type": "nope", "csrf_token": token})
    assert bad.status_code == 400 and "Not a valid choice" in bad.get_data(as_text=True)
