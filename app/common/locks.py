"""Row locks, and one rule for MariaDB/MySQL lock conflicts: which errors mean "run the
transaction again".

InnoDB answers a deadlock (1213) or a lock wait timeout (1205) by rolling the victim's
transaction back: nothing it wrote stays, so a transaction that does only database work may
simply run again. (Work that calls out, such as a PSP call or an HTTP delivery, must stay
outside the retried transaction.)
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Select, bindparam, select
from sqlalchemy.exc import OperationalError

from app.extensions import db

log = logging.getLogger(__name__)

T = TypeVar("T")

LOCK_CONFLICT_CODES = frozenset({1205, 1213})  # lock wait timeout, deadlock
ATTEMPTS = 3


@functools.cache
def locking_read(model: type, column: str = "id") -> Select:
    """SELECT … FOR UPDATE of one row of `model` by `column` (a bind parameter named "key").

    Built once per model and column: every webhook, return and action locks a row, and building
    the statement each time cost more CPU than SQLAlchemy's cached compilation of it.
    populate_existing refreshes an instance the session already holds, so decisions are made on
    the locked, current row and not on a stale copy.
    """
    return (
        select(model)
        .where(getattr(model, column) == bindparam("key"))
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def lock_row(model: type[T], key, *, column: str = "id") -> T | None:
    """The row (None when there is none) with a lock held until the caller commits."""
    return db.session.execute(locking_read(model, column), {"key": key}).scalar_one_or_none()


def row_locks_only_connection() -> Connection:
    """A connection of its own whose writes lock only the rows they touch: on MySQL/MariaDB in
    READ COMMITTED, so no gap locks hold up the live paths inserting beside them (the outbox's
    claim, retention's deletes). SQLite has one writer at a time anyway."""
    engine = db.engine
    if engine.dialect.name in ("mysql", "mariadb"):
        return engine.connect().execution_options(isolation_level="READ COMMITTED")
    return engine.connect()


def read_committed(statement, params: dict | None = None) -> list:
    """The rows of `statement` as committed now, not as the session's transaction first saw
    them (a REPEATABLE READ snapshot), on a connection of its own; SQLite has one writer at a
    time, so the session's own read is the same there."""
    if db.engine.dialect.name == "sqlite":
        return list(db.session.execute(statement, params or {}).all())
    with row_locks_only_connection() as conn:
        return list(conn.execute(statement, params or {}).all())


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
