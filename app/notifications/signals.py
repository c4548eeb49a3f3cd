"""What notification delivery announces; who reacts is connected in `app/wiring.py`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.common.hooks import Hook


@dataclass(frozen=True)
class Attempted:
    """One finished attempt, as an endpoint's health sees it: where, when, whether it worked."""

    endpoint_id: int
    at: datetime
    ok: bool


# (attempts: list[Attempted]): a delivery cycle's outcomes were committed.
attempted = Hook("notifications.attempted")
