"""PAYBRIDGE_ENV=production's settings for tests: every variable a role reads cleared, then
safe values (a random SECRET_KEY and METRICS_TOKEN, MariaDB, https, staging's test-mode key)."""

from __future__ import annotations

import secrets

import pytest

from app.config import RENAMED_SETTINGS, environment_variables


def safe_production_settings(database_url: str) -> dict[str, str]:
    """Values ProductionConfig accepts: what a careful operator sets."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": database_url,
        "PUBLIC_BASE_URL": "https://pay.example.com",
        "METRICS_TOKEN": secrets.token_urlsafe(32),
        "STRIPE_TEST_SECRET_KEY": "sk_test_staging",
        "STRIPE_TEST_WEBHOOK_SECRET": "whsec_staging_old,whsec_staging_new",
    }


def clear_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting left from the suite's own environment (tests/conftest.py sets some)."""
    for name in environment_variables() | set(RENAMED_SETTINGS):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch
