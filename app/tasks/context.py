"""The app context jobs run in. (Notifications have no jobs: the worker's pump delivers them
straight from the outbox, see app/notifications/pump.py.)"""

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
