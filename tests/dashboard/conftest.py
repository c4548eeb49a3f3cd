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


@pytest.fixture(params=["live", "rollup"])
def overview_source(request, app, monkeypatch):
    """The overview's pages read twice: from the payments (no rollup yet) and from the rollup
    the worker keeps, brought up to date just before the page reads it (its run, for real)."""
    if request.param == "rollup":
        from app.reporting import overview, rollup

        read = overview.figures

        def after_a_worker_run(**kwargs):
            rollup.refresh()
            return read(**kwargs)

        monkeypatch.setattr(overview, "figures", after_a_worker_run)
        # No write in flight in a test: the run takes everything written before it.
        monkeypatch.setitem(app.config, "ROLLUP_COMMIT_LAG_SECONDS", 0)
    return request.param
