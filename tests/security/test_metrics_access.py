"""/metrics answers only a scrape that sends METRICS_TOKEN (`Authorization: Bearer`, or as the
Basic user name); production refuses to start without the token (test_settings.py), so it
never serves metrics anonymously. Outside production an unset token leaves /metrics open (the
demo, the benchmark)."""

from __future__ import annotations

import base64
import os

import requests

from app.config import environment_variables
from tests.support.gunicorn import running_gunicorn
from tests.support.production import safe_production_settings


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_production_answers_401_without_the_metrics_token_and_the_metrics_with_it(
    production_app,
):
    client = production_app.test_client()
    token = production_app.config["METRICS_TOKEN"]
    client.get("/healthz")

    for headers in ({}, bearer("wrong"), bearer(token[:-1]), {"Authorization": "Bearer"}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401, headers
        assert refused.get_json()["error"]["code"] == "AUTHENTICATION_REQUIRED"
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert b"paybridge_" not in refused.data

    for headers in (
        bearer(token),
        {"Authorization": "Basic " + base64.b64encode(f"{token}:".encode()).decode()},
    ):
        scraped = client.get("/metrics", headers=headers)
        assert scraped.status_code == 200
        assert b"paybridge_http_requests_total" in scraped.data


def test_a_token_set_outside_production_is_required_too(app, client):
    app.config["METRICS_TOKEN"] = "a-token-for-this-test-only-0123456789"
    try:
        assert client.get("/metrics").status_code == 401
        assert (
            client.get("/metrics", headers=bearer(app.config["METRICS_TOKEN"])).status_code == 200
        )
    finally:
        app.config["METRICS_TOKEN"] = None
    assert client.get("/metrics").status_code == 200  # unset: the demo's open /metrics


def test_gunicorn_in_production_keeps_metrics_to_the_token_holder(app):
    settings = safe_production_settings(app.config["SQLALCHEMY_DATABASE_URI"])
    environment = {
        **{k: v for k, v in os.environ.items() if k not in environment_variables()},
        **settings,
        "PAYBRIDGE_ENV": "production",
        "REDIS_URL": app.config["REDIS_URL"],
        # Production checks Stripe as it starts: the suite's Stripe is the emulator.
        "STRIPE_API_BASE": app.config["STRIPE_API_BASE"],
    }

    with running_gunicorn(environment) as url:
        anonymous = requests.get(f"{url}/metrics", timeout=10)
        scrape = requests.get(
            f"{url}/metrics", headers=bearer(settings["METRICS_TOKEN"]), timeout=10
        )
        health = requests.get(f"{url}/healthz", timeout=10)

    assert anonymous.status_code == 401
    assert "paybridge_" not in anonymous.text
    assert scrape.status_code == 200 and "paybridge_http_requests_total" in scrape.text
    assert health.headers["Strict-Transport-Security"] == "max-age=31536000"
