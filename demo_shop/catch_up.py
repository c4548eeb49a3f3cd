"""Catching up after a stop: what PayBridge notified while the shop was down, pulled through
its Events API (`GET /api/v1/events`, docs/notifications.md) and applied as if it had arrived.

PayBridge retries a notification for hours, but a shop down longer, or one that lost its
store's last minutes, would miss news. So on every start (`python -m demo_shop run`, or
`python -m demo_shop catch-up` by hand) the shop asks for the events since the newest one it
applied (`EventPosition`, kept by notifications.handle for pushed and pulled ones alike), looking
back LOOK_BACK further for events that committed late, and applies them oldest first through
the same handler as /notify: an event it already has (same webhook-id) changes nothing.

The first start remembers "now" and pulls nothing: there was nothing to miss yet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from flask import Flask

from demo_shop import notifications
from demo_shop.extensions import db
from demo_shop.models import EventPosition, utcnow
from demo_shop.paybridge import PayBridgeClient, PayBridgeError

log = logging.getLogger(__name__)

LOOK_BACK = timedelta(minutes=10)
PAGE_SIZE = 100
# On start PayBridge may be starting too: try a few times, then leave it to the next start.
START_ATTEMPTS = 5


@dataclass
class CatchUp:
    first_start: bool = False
    read: int = 0  # events PayBridge listed in the window
    outcomes: Counter = field(default_factory=Counter)  # per notifications outcome

    @property
    def applied(self) -> int:
        return self.read - self.outcomes[notifications.DUPLICATE]

    def summary(self) -> str:
        if self.first_start:
            return "first start: events from now on will be caught up after a stop"
        detail = ", ".join(f"{n} {outcome}" for outcome, n in sorted(self.outcomes.items()))
        return f"{self.read} events since the last one applied" + (f" ({detail})" if detail else "")


def catch_up(client: PayBridgeClient) -> CatchUp:
    """Pull and apply what the shop missed; PayBridgeError when PayBridge cannot tell (the
    position stays, so nothing is skipped)."""
    report = CatchUp()
    position = db.session.get(EventPosition, 1)
    if position is None:
        db.session.add(EventPosition(id=1, created_at=utcnow(), caught_up_at=utcnow()))
        db.session.commit()
        report.first_start = True
        return report
    since = position.created_at - LOOK_BACK
    events = list(_events_since(client, since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")))
    for event in reversed(events):  # oldest first, as they happened
        report.read += 1
        report.outcomes[notifications.handle(event["id"], event)] += 1
        db.session.commit()
    position = db.session.get(EventPosition, 1)
    position.caught_up_at = utcnow()
    db.session.commit()
    return report


def _events_since(client: PayBridgeClient, created_gte: str):
    params: dict = {"created_gte": created_gte, "limit": PAGE_SIZE}
    while True:
        page = client.list_events(**params)
        yield from page["data"]
        if not page["has_more"]:
            return
        params["starting_after"] = page["next_cursor"]


def catch_up_with_retries(app: Flask, *, attempts: int = START_ATTEMPTS, pause: float = 1.0):
    """The start's catch-up: retried while PayBridge is unreachable, then logged and left."""
    client = app.extensions.get("paybridge")
    if client is None:
        return None
    for attempt in range(1, attempts + 1):
        with app.app_context():
            try:
                report = catch_up(client)
            except PayBridgeError as error:
                db.session.rollback()
                if not error.retryable or attempt == attempts:
                    log.warning("catch-up with PayBridge's events failed: %s", error)
                    return None
                log.info("catch-up: %s; trying again", error)
            else:
                log.info("caught up with PayBridge: %s", report.summary())
                return report
            finally:
                db.session.remove()
        time.sleep(pause * 2 ** (attempt - 1))
    return None


def start_catching_up(app: Flask) -> threading.Thread:
    """Catch up beside the server's start, so pages are served meanwhile."""
    thread = threading.Thread(
        target=catch_up_with_retries, args=(app,), name="paybridge-catch-up", daemon=True
    )
    thread.start()
    return thread
