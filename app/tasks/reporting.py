"""The overview's rollup (app/reporting/rollup.py), kept by the worker (schedule.py)."""

from __future__ import annotations

from app.reporting.rollup import refresh

# A run's RQ timeout (schedule.py): a first run rebuilds everything.
ROLLUP_TIMEOUT_SECONDS = 1800


def refresh_payment_rollup() -> dict[str, int | bool]:
    """Fold the payments changed since the last run into the rollup; idempotent, one run at a
    time (a Redis lock). Returns what it did."""
    report = refresh()
    return {"skipped": report.skipped, "buckets": report.buckets, "rows": report.rows}
