"""Notification jobs. Thin: they take ids and call app.notifications.delivery."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, has_app_context

_job_app: Flask | None = None


@contextmanager
def job_app_context() -> Iterator[None]:
    """The app context a job runs in: worker.py pushes one per job; `rq worker` does not."""
    global _job_app
    if has_app_context():
        yield
        return
    if _job_app is None:
        from app import create_app

        _job_app = create_app()
    with _job_app.app_context():
        yield


def deliver_notification(notification_id: int) -> None:
    """One delivery attempt (idempotent: a repeated job finds nothing to do)."""
    from app.notifications.delivery import deliver

    with job_app_context():
        deliver(notification_id)


def sweep_notifications() -> int:
    """Periodic: enqueue due notifications that are not queued (Redis outage, lost job)."""
    from app.notifications.delivery import sweep_due

    with job_app_context():
        return sweep_due()
