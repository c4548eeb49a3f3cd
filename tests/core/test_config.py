"""Configuration from the environment: production refuses to start without its secrets."""

from __future__ import annotations

import pytest

from app import create_app
from app.config import ConfigError, load_config
from tests.support.production import clear_settings, safe_production_settings

PRODUCTION_SECRETS = {
    **safe_production_settings("mysql+pymysql://pb:pw@db.internal/paybridge"),
    "STRIPE_LIVE_SECRET_KEY": "sk_live_x1",
    "STRIPE_LIVE_WEBHOOK_SECRET": "whsec_old,whsec_new",
}


@pytest.fixture
def clean_env(monkeypatch):
    return clear_settings(monkeypatch)


def test_production_refuses_to_start_without_its_secrets_and_names_them(clean_env):
    clean_env.setenv("STRIPE_LIVE_SECRET_KEY", "sk_live_x1")
    with pytest.raises(ConfigError) as refused:
        create_app("production")
    message = str(refused.value)
    for missing in ("SECRET_KEY", "DATABASE_URL", "PUBLIC_BASE_URL"):
        assert missing in message
    assert "STRIPE_LIVE_SECRET_KEY" not in message


def test_production_starts_with_its_secrets_and_secure_cookies(clean_env):
    for name, value in PRODUCTION_SECRETS.items():
        clean_env.setenv(name, value)
    config = load_config("production")
    assert config.SESSION_COOKIE_SECURE is True
    assert config.SESSION_COOKIE_HTTPONLY is True and config.SESSION_COOKIE_SAMESITE == "Lax"
    assert config.STRIPE_LIVE_WEBHOOK_SECRETS == ["whsec_old", "whsec_new"]  # rotation
    assert config.stripe_modes() == [False, True]  # staging's test key, and live
    assert config.STRIPE_API_BASE == "https://api.stripe.com"
    assert config.NOTIFY_ALLOWED_NETWORKS == []


def test_the_demo_needs_no_secrets_and_points_at_the_emulator(clean_env):
    config = load_config("development")
    assert config.SECRET_KEY and config.STRIPE_TEST_SECRET_KEY.startswith("sk_test_")
    assert config.stripe_modes() == [False]  # the demo runs in test mode
    assert config.STRIPE_API_BASE == "http://127.0.0.1:12111"
    assert config.SQLALCHEMY_DATABASE_URI.startswith("sqlite:///")


@pytest.mark.parametrize("ttl", ["1800", "60", "86401"])
def test_a_checkout_lifetime_stripe_would_refuse_is_refused_at_start(clean_env, ttl):
    clean_env.setenv("CHECKOUT_SESSION_TTL_SECONDS", ttl)
    with pytest.raises(ConfigError, match="CHECKOUT_SESSION_TTL_SECONDS"):
        load_config("development")


def test_checkout_lifetimes_within_stripes_bounds_are_accepted(clean_env):
    for ttl in (31 * 60, 24 * 3600):
        clean_env.setenv("CHECKOUT_SESSION_TTL_SECONDS", str(ttl))
        assert load_config("development").CHECKOUT_SESSION_TTL_SECONDS == ttl


def test_an_unknown_environment_name_is_refused(clean_env):
    with pytest.raises(ConfigError, match="PAYBRIDGE_ENV"):
        load_config("staging-typo")


def test_logs_carry_the_request_id_and_never_the_api_key(app, client, make_merchant, caplog):
    from tests.support.api import auth_headers

    _, raw_key = make_merchant()
    caplog.set_level("DEBUG")
    response = client.post(
        "/api/v1/payments",
        json={
            "merchant_reference": "log-1",
            "amount": 100,
            "currency": "EUR",
            "success_url": "https://shop.example/ok",
            "cancel_url": "https://shop.example/no",
        },
        headers={**auth_headers(raw_key, "log-key-1"), "X-Request-Id": "req_logcheck_0001"},
    )
    assert response.status_code == 201
    assert response.headers["X-Request-Id"] == "req_logcheck_0001"
    lines = [record for record in caplog.records if record.name.startswith("app.")]
    assert lines, "the create path logs what it does"
    assert all(getattr(r, "context", None) == "req_logcheck_0001" for r in lines)
    text = caplog.text
    assert raw_key not in text and raw_key[12:] not in text
    assert app.config["STRIPE_TEST_SECRET_KEY"] not in text
