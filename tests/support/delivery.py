"""Notification delivery in the test process, as the worker's pump runs it."""

from __future__ import annotations

from app.notifications.delivery import deliver_due


def deliver_due_notifications(app) -> None:
    """Delivery cycles until nothing is due."""
    with app.app_context():
        while deliver_due():
            pass
