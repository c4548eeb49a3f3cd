"""Notification delivery in the test process, as the worker's pump runs it."""

from __future__ import annotations

from app.notifications.delivery import deliver_due
from app.notifications.fanout import fan_out_all
from tests.support.waiting import wait_until


def deliver_due_notifications(app) -> int:
    """Delivery cycles (claim, POST, record) until nothing is due; how many attempts that made."""
    made = 0
    with app.app_context():
        while attempts := deliver_due():
            made += attempts
    return made


class Deliveries:
    """The worker's delivery cycles, run in this process (the `worker` fixture)."""

    def __init__(self, app) -> None:
        self.app = app

    def fan_out(self) -> int:
        """Fan the new notifications out to their endpoints (the pump's first step), and
        nothing more; how many."""
        with self.app.app_context():
            return fan_out_all()

    def run_once(self) -> int:
        """Deliver until nothing is due; how many attempts that made."""
        return deliver_due_notifications(self.app)

    def run_until(self, condition, timeout: float = 20.0, what: str = "condition"):
        """Run cycles (retries become due as time passes) until `condition()`, called in a
        fresh app context after each, holds; returns what it returned."""

        def delivered():
            self.run_once()
            return condition()

        return wait_until(delivered, what=what, timeout=timeout, interval=0.2, app=self.app)
