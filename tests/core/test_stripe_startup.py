"""Production's web processes check Stripe as they start: a wrong setup is a loud ERROR line and a
failing, non-critical "stripe" entry on /readyz (200, degraded), while the process keeps
serving."""

from __future__ import annotations

import json
import logging
import os
import re

import pytest
import requests

from app.config import environment_variables
from app.psp_events.setup import startup_check
from tests.support.gunicorn import running_gunicorn
from tests.support.production import safe_production_settings
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("emu")

PUBLIC_URL = "https://pay.example.com"  # safe_production_settings' PUBLIC_BASE_URL
STAGING_KEY = "sk_test_staging"  # and its test-mode key


def production_environment(app, **overrides: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if k not in environment_variables()},
        **safe_production_settings(app.config["SQLALCHEMY_DATABASE_URI"]),
        "PAYBRIDGE_ENV": "production",
        "REDIS_URL": app.config["REDIS_URL"],
        "RATELIMIT_STORAGE_URI": app.config["REDIS_URL"],
        "STRIPE_API_BASE": app.config["STRIPE_API_BASE"],  # the emulator
        **overrides,
    }


def checked_readiness(url: str) -> dict:
    """/readyz once the process's start-up check of Stripe has a result (not pending)."""

    def checked():
        body = requests.get(f"{url}/readyz", timeout=10).json()
        stripe = body["checks"].get("stripe")
        return body if stripe and not stripe["detail"].startswith("pending") else None

    return wait_until(checked, what="the start-up check of Stripe on /readyz", timeout=20)


def test_a_production_process_with_no_webhook_endpoint_says_so_and_keeps_serving(app, tmp_path):
    log_path = tmp_path / "gunicorn.log"
    with (
        log_path.open("w") as log,
        running_gunicorn(production_environment(app), stderr=log) as url,
    ):
        readiness = checked_readiness(url)
        ready = requests.get(f"{url}/readyz", timeout=10)
        alive = requests.get(f"{url}/healthz", timeout=10)

    assert ready.status_code == 200 and alive.status_code == 200  # not critical: still serving
    assert readiness["status"] == "degraded" and readiness["down"] == ["stripe"]
    stripe = readiness["checks"]["stripe"]
    assert stripe["ok"] is False and stripe["critical"] is False
    assert "reconciliation" in stripe["degrades"]
    assert stripe["detail"] == (
        f"test mode: no webhook endpoint at {PUBLIC_URL}/webhooks/stripe: PayBridge hears of "
        "nothing. Fix: run `flask stripe setup`."
    )
    logged = log_path.read_text()
    records = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    errors = [r["message"] for r in records if r["level"] == "ERROR"]  # production: JSON lines
    assert errors == ["STRIPE IS NOT SET UP AS PAYBRIDGE NEEDS IT: " + stripe["detail"]], logged
    assert STAGING_KEY not in logged


def test_a_production_process_finds_the_setup_that_flask_stripe_setup_made(
    app, runner, monkeypatch
):
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", PUBLIC_URL)
    monkeypatch.setitem(app.config, "STRIPE_TEST_SECRET_KEY", STAGING_KEY)
    app.extensions.pop("paybridge_psp", None)
    made = runner.invoke(args=["stripe", "setup", "--mode", "test"])
    assert made.exit_code == 0, made.output
    secret = re.search(r"^STRIPE_TEST_WEBHOOK_SECRET=(whsec_\S+)$", made.output, re.M).group(1)

    environment = production_environment(app, STRIPE_TEST_WEBHOOK_SECRET=secret)
    with running_gunicorn(environment) as url:
        readiness = checked_readiness(url)
    assert readiness["status"] == "ok" and readiness["down"] == []
    stripe = readiness["checks"]["stripe"]
    assert stripe["ok"] is True and stripe["critical"] is False
    assert stripe["detail"] == "test mode: key and webhook endpoint as PayBridge needs them"


def test_an_unreachable_stripe_is_a_failed_check_not_a_failed_start(
    production_app, monkeypatch, caplog
):
    monkeypatch.setitem(production_app.config, "STRIPE_API_BASE", "http://127.0.0.1:1")
    with caplog.at_level(logging.ERROR, logger="app.psp_events.setup"):
        ok, detail = startup_check(production_app)
    assert ok is False
    assert detail.startswith("test mode: Stripe could not be asked (PspUnavailable")
    assert "Fix: check STRIPE_API_BASE and the network" in detail
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    answer = production_app.test_client().get("/readyz")
    assert answer.status_code == 200 and answer.get_json()["down"] == ["stripe"]
    assert answer.get_json()["checks"]["stripe"]["detail"] == detail


def test_readyz_lists_stripe_as_pending_not_failing_while_the_start_up_check_runs(
    production_app, monkeypatch
):
    import threading

    from app.runtime import stripe_check

    release = threading.Event()

    def slow_check(app):
        release.wait(10)
        return startup_check(app)

    monkeypatch.setattr(stripe_check, "startup_check", slow_check)
    thread = stripe_check.check_stripe_in_background(production_app)
    try:
        answer = production_app.test_client().get("/readyz")
        body = answer.get_json()
        assert answer.status_code == 200 and body["down"] == []
        assert body["checks"]["stripe"]["ok"] is True
        assert body["checks"]["stripe"]["detail"].startswith("pending:")
    finally:
        release.set()
        thread.join(20)
    detail = production_app.test_client().get("/readyz").get_json()["checks"]["stripe"]["detail"]
    assert not detail.startswith("pending")  # the verdict replaced it


def test_readyz_has_no_stripe_entry_where_the_process_does_not_check_stripe(client):
    body = client.get("/readyz").get_json()
    assert "stripe" not in body["checks"]  # outside production: `flask stripe check`
