"""One access line per request, written by the app (gunicorn's own access log stays off): method,
path, route (the URL rule, ids left out), status, duration, request id, the client's address as
ProxyFix gives it, the merchant when known; for errors and 404s too; never a key, a query string
or a body. With LOG_FORMAT=json every line is one JSON object."""

from __future__ import annotations

import json
import logging
import os

import requests

from app.logging_setup import ACCESS_LOGGER, TEXT_FORMAT
from tests.support.apps import app_with_env
from tests.support.gunicorn import running_gunicorn


def access_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == ACCESS_LOGGER]


def test_gunicorn_with_json_logs_writes_one_access_object_per_request_and_no_secret(
    app, make_merchant, tmp_path
):
    merchant, key = make_merchant(notify_url=None)
    environment = {**os.environ, "LOG_FORMAT": "json", "ACCESS_LOG": "1", "PROXY_FIX_HOPS": "1"}
    log_file = tmp_path / "web.log"
    auth = {"Authorization": f"Bearer {key}", "X-Forwarded-For": "203.0.113.7"}
    body = {
        "merchant_reference": "access-log-1",
        "amount": 2599,
        "currency": "EUR",
        "description": "card-number-4242424242424242",
        "success_url": "https://shop.example.com/ok",
        "cancel_url": "https://shop.example.com/cart",
    }
    info = ("--log-level", "info")  # gunicorn's own lines too: its start, its worker booting
    with log_file.open("w") as sink, running_gunicorn(environment, stderr=sink, extra=info) as url:
        created = requests.post(
            f"{url}/api/v1/payments?token=query-secret-value",
            json=body,
            headers={**auth, "Idempotency-Key": "access-log-1", "X-Request-Id": "access-create-1"},
            timeout=30,
        )
        payment_id = created.json()["id"]
        read = requests.get(
            f"{url}/api/v1/payments/{payment_id}",
            headers={**auth, "X-Request-Id": "access-read-0001"},
            timeout=10,
        )
        missing = requests.get(f"{url}/no/such/page", headers={"X-Request-Id": "access-404-001"})
        anonymous = requests.get(
            f"{url}/api/v1/payments", headers={"X-Request-Id": "access-401-001"}, timeout=10
        )
    assert (created.status_code, read.status_code) == (201, 200)
    assert (missing.status_code, anonymous.status_code) == (404, 401)

    text = log_file.read_text()
    # Every line is one JSON object, but gunicorn's first, written before its config's hooks run.
    first, *rest = text.splitlines()
    assert "Starting gunicorn" in first
    lines = [json.loads(line) for line in rest]
    access = {line["request_id"]: line for line in lines if line["logger"] == ACCESS_LOGGER}
    wanted = {"access-create-1", "access-read-0001", "access-404-001", "access-401-001"}
    assert wanted <= access.keys()
    assert sum(line["logger"] == ACCESS_LOGGER for line in lines) == len(access)  # one each

    create = access["access-create-1"]
    assert create["method"] == "POST" and create["status"] == 201
    assert create["path"] == "/api/v1/payments" and create["route"] == "/api/v1/payments"
    assert create["remote_addr"] == "203.0.113.7"  # the client nginx saw, through ProxyFix
    assert create["merchant_id"] == merchant.id
    assert isinstance(create["duration_ms"], float) and create["duration_ms"] > 0
    assert create["level"] == "INFO" and create["time"]

    assert access["access-read-0001"]["path"] == f"/api/v1/payments/{payment_id}"
    assert access["access-read-0001"]["route"] == "/api/v1/payments/<string:payment_id>"
    assert access["access-404-001"]["status"] == 404
    assert access["access-404-001"]["route"] == "unmatched"
    assert access["access-401-001"]["status"] == 401
    assert access["access-401-001"]["merchant_id"] is None
    # The other lines of those requests carry the same request id, as JSON too.
    assert any(
        line["logger"] != ACCESS_LOGGER and line.get("request_id") == "access-create-1"
        for line in lines
    )
    assert any(line["logger"] == "gunicorn.error" for line in lines)
    for secret in (key, "query-secret-value", "4242424242424242", "token="):
        assert secret not in text


def test_a_500_and_a_404_get_their_access_line_and_a_forged_line_break_stays_on_its_line(
    app, caplog
):
    with app_with_env(ACCESS_LOG="1") as other:
        other.config["PROPAGATE_EXCEPTIONS"] = False  # answer the 500 as production does

        def boom():
            raise RuntimeError("a bug")

        other.add_url_rule("/boom/<int:n>", "boom", boom)
        client = other.test_client()
        caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
        assert client.get("/boom/7").status_code == 500
        assert client.get("/x%0A2026-01-01 INFO forged").status_code == 404

    failed, missing = access_records(caplog)
    assert (failed.status, failed.route, failed.path) == (500, "/boom/<int:n>", "/boom/7")
    assert (missing.status, missing.route) == (404, "unmatched")
    line = logging.Formatter(TEXT_FORMAT).format(missing)
    assert "\n" not in line and "/x\\n2026-01-01 INFO forged 404" in line


def test_access_log_off_writes_no_access_line(app, caplog):
    with app_with_env(ACCESS_LOG="0") as quiet:
        caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
        assert quiet.test_client().get("/healthz").status_code == 200
    assert access_records(caplog) == []


def test_a_dashboard_request_names_the_users_merchant(app, merchant, make_user, caplog):
    from tests.support.pages import logged_in

    make_user(merchant.id, "access-log@example.com")
    client = logged_in(app, "access-log@example.com")
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    caplog.clear()  # the log-in's own lines
    assert client.get("/dashboard/").status_code == 200
    lines = [(r.route, r.merchant_id, r.status) for r in access_records(caplog)]
    assert lines == [("/dashboard/", merchant.id, 200)], lines
