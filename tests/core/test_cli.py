"""`flask merchants …` against MariaDB: keys shown once, usable, listable, revocable."""

from __future__ import annotations

import json

from sqlalchemy import select

from app.extensions import db
from app.models import ApiKey, Merchant, NotificationEndpoint
from app.notifications.event_types import LEGACY_EVENT_TYPES
from tests.support.api import auth_headers


def test_create_with_json_prints_one_object_with_a_working_key(app, runner, client):
    result = runner.invoke(
        args=["merchants", "create", "Acme", "--notify-url", "https://127.0.0.1:8443/h", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) >= {"merchant_id", "api_key", "signing_secret"}
    assert data["signing_secret"].startswith("whsec_")
    assert client.get("/api/v1/payments", headers=auth_headers(data["api_key"])).status_code == 200
    with app.app_context():
        # Its first endpoint, in the key's mode, receiving what a notify_url received.
        [endpoint] = db.session.scalars(
            select(NotificationEndpoint).where(
                NotificationEndpoint.merchant_id == data["merchant_id"]
            )
        ).all()
        assert (endpoint.url, endpoint.livemode) == ("https://127.0.0.1:8443/h", False)
        assert endpoint.public_id == data["notification_endpoint_id"]
        assert endpoint.signing_secret == data["signing_secret"]
        assert endpoint.event_types == list(LEGACY_EVENT_TYPES)
        stored = db.session.execute(select(ApiKey)).scalar_one()
        assert data["api_key"] not in (stored.key_hash, stored.prefix)


def test_create_prints_key_and_secret_for_people(runner):
    result = runner.invoke(
        args=["merchants", "create", "Shop", "--notify-url", "http://127.0.0.1:8000/n"]
    )
    assert result.exit_code == 0
    assert "API key:        pbk_" in result.output
    assert "Signing secret: whsec_" in result.output


def test_create_refuses_a_notify_url_that_is_not_http(runner, app):
    result = runner.invoke(args=["merchants", "create", "Bad", "--notify-url", "ftp://x"])
    assert result.exit_code != 0
    assert "http(s) URL" in result.output
    with app.app_context():
        assert db.session.execute(select(Merchant)).first() is None


def test_list_keys_create_and_revoke_by_prefix(app, runner, client):
    data = json.loads(runner.invoke(args=["merchants", "create", "K", "--json"]).output)
    mid = str(data["merchant_id"])
    listed = runner.invoke(args=["merchants", "list"])
    assert "K" in listed.output and mid in listed.output

    created = runner.invoke(args=["merchants", "keys", "create", mid, "--name", "backup"])
    assert created.exit_code == 0
    second_key = created.output.split(": ", 1)[1].split()[0]
    assert second_key.startswith("pbk_")

    keys = runner.invoke(args=["merchants", "keys", "list", mid])
    assert "backup" in keys.output and data["api_key_prefix"] in keys.output
    assert data["api_key"] not in keys.output

    revoked = runner.invoke(args=["merchants", "keys", "revoke", data["api_key_prefix"]])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    first = client.get("/api/v1/payments", headers=auth_headers(data["api_key"]))
    assert first.status_code == 401
    assert client.get("/api/v1/payments", headers=auth_headers(second_key)).status_code == 200


def test_revoke_by_id_and_unknown_keys(app, runner):
    data = json.loads(runner.invoke(args=["merchants", "create", "R", "--json"]).output)
    with app.app_context():
        key_id = db.session.execute(select(ApiKey.id)).scalar_one()
    assert runner.invoke(args=["merchants", "keys", "revoke", str(key_id)]).exit_code == 0
    again = runner.invoke(args=["merchants", "keys", "revoke", str(key_id)])
    assert "already revoked" in again.output
    missing = runner.invoke(args=["merchants", "keys", "revoke", "pbk_nothing"])
    assert missing.exit_code != 0 and "no API key" in missing.output
    unknown = runner.invoke(args=["merchants", "keys", "list", "999999"])
    assert unknown.exit_code != 0
    with app.app_context():
        key = db.session.get(ApiKey, key_id)
        assert key.merchant_id == data["merchant_id"]
        assert key.revoked_at is not None
