"""Dashboard fixtures. The merchants, users and logged-in clients (`tenants`, `client_a`,
`client_b`, `client_op`) are the root conftest's: other suites drive the dashboard too."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _print_crashes(monkeypatch):
    """A 500 in a dashboard test prints its traceback (the app logs it where pytest can't see)."""
    import traceback

    import app.errors as errors

    original = errors.log.exception

    def log_and_print(*args, **kwargs):
        traceback.print_exc()
        original(*args, **kwargs)

    monkeypatch.setattr(errors.log, "exception", log_and_print)
