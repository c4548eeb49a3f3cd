"""The periodic reconciliation job (app/tasks/schedule.py runs it every RECON_INTERVAL_SECONDS)."""

from __future__ import annotations

import logging

from app.models import ReconciliationRun
from app.reconciliation.service import run_reconciliation

log = logging.getLogger(__name__)


class ReconciliationFailed(RuntimeError):
    """Raised so RQ records the job as failed when the run itself failed."""


def run_scheduled_reconciliation() -> int:
    """One run (trigger "schedule"); returns its id. A run skipped because another one holds
    the lock is not a failure; a failed run raises so RQ's failed registry shows it."""
    run = run_reconciliation(trigger="schedule")
    if run.status == ReconciliationRun.STATUS_FAILED:
        raise ReconciliationFailed(f"reconciliation run {run.id} failed: {run.error_text}")
    return run.id
