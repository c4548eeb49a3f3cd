"""The one way a test waits for something another thread, process or server does."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import text

from app.extensions import db
from app.models import Payment
from tests.support.rows import get_row

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


def wait_for_payment_status(app, payment_id: int, status: str, *, timeout: float = 15.0) -> Payment:
    """Until the payment is in `status` (moved by a webhook, a worker, a thread); the payment
    as it is then, its history loaded."""

    def reached():
        payment = get_row(app, Payment, payment_id, load=("history",))
        return payment if payment.status == status else None

    return wait_until(
        reached,
        what=f"payment {payment_id} to be {status}",
        timeout=timeout,
        details=lambda: f"it is {get_row(app, Payment, payment_id).status}",
    )


# A locking read of a table running in this test database. While a test holds the row it reads
# locked, it is waiting for it. (INNODB_TRX may not list that wait yet: the optimizer reads a
# unique key's row before the transaction shows there.)
_LOCKING_READ = text(
    "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
    "WHERE DB = DATABASE() AND COMMAND = 'Query' AND INFO LIKE :pattern"
)


def wait_for_locking_read(app, table: str, *, what: str, details=None) -> None:
    """Until another connection runs SELECT … FROM `table` … FOR UPDATE (MariaDB)."""

    def running() -> bool:
        with db.engine.connect() as conn:
            pattern = f"%FROM {table}%FOR UPDATE"
            return conn.execute(_LOCKING_READ, {"pattern": pattern}).scalar_one() > 0

    wait_until(running, what=what, app=app, details=details)
