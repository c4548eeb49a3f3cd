"""The one way a test waits for something another thread, process or server does."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    *,
    what: str,
    timeout: float = 10.0,
    interval: float = 0.05,
    app=None,
    details: Callable[[], object] | None = None,
) -> T:
    """Call `condition()` every `interval` seconds until it returns something truthy, and
    return that; after `timeout` seconds fail the test, naming `what` was awaited, the last
    value seen and `details()` (a log, say).

    With `app`, each call runs in a fresh app context whose session is removed afterwards, so
    every poll sees what other connections committed since the last.
    """
    deadline = time.monotonic() + timeout
    while True:
        if app is None:
            value = condition()
        else:
            with app.app_context():
                value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            message = f"timed out after {timeout}s waiting for {what} (last: {value!r:.500})"
            if details is not None:
                message += f"\n{details()}"
            raise AssertionError(message)
        time.sleep(interval)
