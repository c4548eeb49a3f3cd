"""Housekeeping jobs (app/tasks/schedule.py runs them periodically)."""

from __future__ import annotations

from app.retention.service import purge

# The purge stops starting batches after this long, well inside its job timeout
# (schedule.py): a backlog bigger than one run's worth is finished by the next runs.
PURGE_BUDGET_SECONDS = 600


def purge_old_records() -> dict[str, int]:
    """Retention: delete what is past its age (app/retention/service.py), in small batches;
    returns the rows deleted per table."""
    return purge(max_seconds=PURGE_BUDGET_SECONDS).rows
