"""/api/v1/notification_endpoints: CRUD scoped to the key's merchant and mode, the secret shown
once, URLs checked as deliveries check them, clear errors for bad input."""

from __future__ import annotations

import threading

from app.common.locks import lock_row
from app.extensions import db
from app.models import NotificationEndpoint
from app.notifications import endpoints
from tests.support.api import auth_headers
from tests.support.factories import add_endpoint, make_api_key
from tests.support.rows import get_row
from tests.support.waiting import wait_for_locking_read

BASE = "/api/v1/notification_endpoints"


def _post(client, key: str, body, path: str = BASE):
    return client.post(path, json=body, headers=auth_headers(key))


def test_create_read_list_update_rotate_and_delete(client, app, make_merchant, receiver):
    merchant, key = make_merchant(notify_url=None)
    created = _post(
        client,
        key,
        {
            "url": receiver.url,
            "enabled_events": ["payment.succeeded", "refund.failed"],
            "description": "orders",
        },
    )
    assert created.status_code == 201, created.get_json()
    endpoint = created.get_json()
    assert endpoint["object"] == "notification_endpoint" and endpoint["id"].startswith("we_")
    assert endpoint["secret"].startswith("whsec_")  # shown once ...
    assert (endpoint["livemode"], endpoint["status"]) == (False, "enabled")
    assert endpoint["enabled_events"] == ["payment.succeeded", "refund.failed"]
    stored = get_row(app, NotificationEndpoint, public_id=endpoint["id"])
    assert stored.signing_secret == endpoint["secret"] and stored.merchant_id == merchant.id

    one = client.get(f"{BASE}/{endpoint['id']}", headers=auth_headers(key)).get_json()
    assert "secret" not in one and one["url"] == receiver.url  # ... and never again
    listed = client.get(BASE, headers=auth_headers(key)).get_json()
    assert [e["id"] for e in listed["data"]] == [endpoint["id"]] and "secret" not in listed["data"][
        0
    ]

    patched = client.patch(
        f"{BASE}/{endpoint['id']}",
        json={"enabled_events": ["*"], "disabled": True, "description": None},
        headers=auth_headers(key),
    ).get_json()
    assert patched["enabled_events"] == ["*"] and patched["status"] == "disabled"
    assert patched["description"] is None and patched["disabled_reason"]
    enabled = client.patch(
        f"{BASE}/{endpoint['id']}", json={"disabled": False}, headers=auth_headers(key)
    ).get_json()
    assert enabled["status"] == "enabled" and enabled["disabled_reason"] is None

    rotated = _post(client, key, None, f"{BASE}/{endpoint['id']}/rotate_secret")
    assert rotated.status_code == 200
    new_secret = rotated.get_json()["secret"]
    stored = get_row(app, NotificationEndpoint, public_id=endpoint["id"])
    assert stored.signing_secrets() == [new_secret, endpoint["secret"]]  # both sign

    deleted = client.delete(f"{BASE}/{endpoint['id']}", headers=auth_headers(key))
    assert deleted.status_code == 200 and deleted.get_json()["deleted"] is True
    gone = client.get(f"{BASE}/{endpoint['id']}", headers=auth_headers(key))
    assert gone.status_code == 404
    assert gone.get_json()["error"]["code"] == "NOTIFICATION_ENDPOINT_NOT_FOUND"
    assert client.get(BASE, headers=auth_headers(key)).get_json()["data"] == []


def test_scoped_to_the_keys_merchant_and_mode(client, app, make_merchant, receiver):
    merchant, key = make_merchant(notify_url=None)
    _, other_key = make_merchant(name="Other", notify_url=None)
    live_key = make_api_key(app, merchant.id, livemode=True)
    endpoint = _post(client, key, {"url": receiver.url, "enabled_events": ["*"]}).get_json()

    for foreign in (other_key, live_key):
        assert (
            client.get(f"{BASE}/{endpoint['id']}", headers=auth_headers(foreign)).status_code == 404
        )
        assert client.get(BASE, headers=auth_headers(foreign)).get_json()["data"] == []
        changed = client.patch(
            f"{BASE}/{endpoint['id']}", json={"disabled": True}, headers=auth_headers(foreign)
        )
        assert changed.status_code == 404, changed.get_json()
        assert (
            client.delete(f"{BASE}/{endpoint['id']}", headers=auth_headers(foreign)).status_code
            == 404
        )
    live = _post(client, live_key, {"url": receiver.url, "enabled_events": ["*"]}).get_json()
    assert live["livemode"] is True
    assert get_row(app, NotificationEndpoint, public_id=endpoint["id"]).enabled


def test_bad_input_is_refused_clearly_and_nothing_is_stored(
    client, app, make_merchant, receiver, notify_config
):
    _, key = make_merchant(notify_url=None)

    def refused(body, status=400):
        r = _post(client, key, body)
        assert r.status_code == status, r.get_json()
        return r.get_json()["error"]

    error = refused({"url": receiver.url, "enabled_events": ["payment.exploded"]})
    assert error["code"] == "VALIDATION_ERROR" and "enabled_events" in str(error)
    error = refused({"url": receiver.url, "enabled_events": []})
    assert "enabled_events" in str(error)
    error = refused({"enabled_events": ["*"]})
    assert "url" in str(error)
    error = refused({"url": "ftp://example.com/x", "enabled_events": ["*"]})
    assert "https:// or http://" in error["message"] or "https:// or http://" in str(error)
    error = refused({"url": receiver.url, "enabled_events": ["*"], "colour": "red"})
    assert "colour" in str(error)
    # PayBridge's own network: refused as every delivery would refuse it.
    notify_config["NOTIFY_ALLOWED_NETWORKS"] = []
    error = refused({"url": receiver.url, "enabled_events": ["*"]})
    assert "loopback" in str(error)
    not_json = client.post(BASE, data="url=x", headers=auth_headers(key))
    assert not_json.status_code == 415
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(NotificationEndpoint)) == 0

    notify_config["NOTIFY_ALLOWED_NETWORKS"] = ["127.0.0.0/8"]
    endpoint = _post(client, key, {"url": receiver.url, "enabled_events": ["*"]}).get_json()
    bad_patch = client.patch(
        f"{BASE}/{endpoint['id']}", json={"disabled": "yes"}, headers=auth_headers(key)
    )
    assert bad_patch.status_code == 400 and "disabled" in str(bad_patch.get_json())


def test_an_enable_during_an_auto_disable_waits_for_it_and_then_enables(
    client, app, make_merchant, receiver
):
    """The PATCH decides on the endpoint as committed, locked: an auto-disable under way when
    the merchant enables is seen (not the request's snapshot, where it is still enabled and
    the enable would do nothing while answering "enabled")."""
    merchant, key = make_merchant(notify_url=None)
    with app.app_context():
        endpoint = add_endpoint(merchant.id, receiver.url, ["*"])
        db.session.commit()
        endpoint_id, public_id = endpoint.id, endpoint.public_id
    answer: dict = {}

    def enable() -> None:
        answer["patch"] = client.patch(
            f"{BASE}/{public_id}", json={"disabled": False}, headers=auth_headers(key)
        )

    request = threading.Thread(target=enable)
    with app.app_context():  # the worker's auto-disable, under way: locked, not committed yet
        endpoints.disable(lock_row(NotificationEndpoint, endpoint_id), endpoints.FAILING)
        request.start()

        what = "the PATCH locking the endpoint"
        wait_for_locking_read(app, "notification_endpoints", what=what, details=lambda: answer)
        db.session.commit()
    request.join(timeout=30)

    assert answer["patch"].status_code == 200, answer["patch"].get_json()
    assert answer["patch"].get_json()["status"] == "enabled"
    stored = get_row(app, NotificationEndpoint, endpoint_id)
    assert (stored.enabled, stored.disabled_reason, stored.disabled_at) == (True, None, None)
