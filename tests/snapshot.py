"""Races of REPEATABLE READ made deterministic: a transaction whose snapshot predates another's
commit, as a request has when it read first and then waited for a row lock."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import text

from app.extensions import db

T = TypeVar("T")


def behind_an_older_snapshot(
    app, committed_meanwhile: Callable[[], object], then: Callable[[], T]
) -> T:
    """Run `then()` in a transaction that has read (fixing its snapshot) before
    `committed_meanwhile()` ran and committed in a session and connection of its own."""
    with app.app_context():
        db.session.execute(text("SELECT id FROM merchants LIMIT 1")).all()  # the snapshot
        with app.app_context():
            committed_meanwhile()
            db.session.commit()
            db.session.remove()
        try:
            return then()
        finally:
            db.session.remove()
