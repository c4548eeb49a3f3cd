"""One rule for MariaDB/MySQL lock conflicts: which errors mean "run the transaction again".

InnoDB answers a deadlock (1213) or a lock wait timeout (1205) by rolling the victim's
transaction back: nothing it wrote stays, so a transaction that does only database work may
simply run again. (Work that calls out, such as a PSP call or an HTTP delivery, must stay
outside the retried transaction.)
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import OperationalError

from app.extensions import db

log = logging.getLogger(__name__)

T = TypeVar("T")

LOCK_CONFLICT_CODES = frozenset({1205, 1213})  # lock wait timeout, deadlock
ATTEMPTS = 3


def is_lock_conflict(exc: OperationalError) -> bool:
    """A deadlock or lock wait timeout: the transaction was rolled back, nothing was written."""
    args = getattr(exc.orig, "args", ())
    return bool(args) and args[0] in LOCK_CONFLICT_CODES


def rollback_quietly() -> None:
    """Roll the session back; a connection that is gone already cannot fail the caller's path."""
    try:
        db.session.rollback()
    except Exception:  # the session is reset either way
        log.debug("rollback failed", exc_info=True)


def retry_lock_conflicts(transaction: Callable[[], T], *, what: str) -> T:
    """Run `transaction` (database work ending in its own commit) again after a lock conflict.

    Each try starts from a rolled-back session, so `transaction` must build everything it
    writes itself. Other errors, and a conflict on the last try, propagate.
    """
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return transaction()
        except OperationalError as exc:
            rollback_quietly()
            if attempt == ATTEMPTS or not is_lock_conflict(exc):
                raise
            log.info("%s: lock conflict, retrying (%d)", what, attempt)
            time.sleep(random.uniform(0.01, 0.05) * attempt)  # let the winner commit
    raise AssertionError("unreachable")
