"""The one rule for lock conflicts: a transaction InnoDB rolled back runs again, nothing else."""

from __future__ import annotations

import pymysql
import pytest
from sqlalchemy.exc import OperationalError

from app.common.locks import ATTEMPTS, is_lock_conflict, retry_lock_conflicts


def db_error(code: int, message: str) -> OperationalError:
    return OperationalError(
        "UPDATE notifications …", {}, pymysql.err.OperationalError(code, message)
    )


DEADLOCK = db_error(1213, "Deadlock found when trying to get lock; try restarting transaction")
LOCK_WAIT = db_error(1205, "Lock wait timeout exceeded; try restarting transaction")
GONE = db_error(2006, "MySQL server has gone away")


def test_deadlocks_and_lock_wait_timeouts_are_lock_conflicts_and_nothing_else_is():
    assert is_lock_conflict(DEADLOCK) and is_lock_conflict(LOCK_WAIT)
    assert not is_lock_conflict(GONE)


@pytest.mark.parametrize("conflict", [DEADLOCK, LOCK_WAIT], ids=["deadlock", "lock_wait"])
def test_a_transaction_that_lost_a_lock_conflict_runs_again(app, conflict):
    calls = []

    def transaction():
        calls.append(1)
        if len(calls) == 1:
            raise conflict
        return "committed"

    with app.app_context():
        assert retry_lock_conflicts(transaction, what="test") == "committed"
    assert len(calls) == 2


def test_other_errors_and_a_conflict_on_every_try_propagate(app):
    calls = []

    def always(error):
        def transaction():
            calls.append(error)
            raise error

        return transaction

    with app.app_context():
        with pytest.raises(OperationalError) as gone:
            retry_lock_conflicts(always(GONE), what="test")
        assert gone.value is GONE and len(calls) == 1
        with pytest.raises(OperationalError) as stuck:
            retry_lock_conflicts(always(DEADLOCK), what="test")
        assert stuck.value is DEADLOCK and len(calls) == 1 + ATTEMPTS
