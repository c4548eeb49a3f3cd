"""List cursors: one opaque encoding of a row's position (created_at, id) for every keyset-paged
list (the API's `starting_after`, the dashboard's older/newer links), the WHERE clauses that
page from it, newest first, and how a page fetched with one row more splits off its next one."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from sqlalchemy import ColumnElement


class InvalidCursor(ValueError):
    """A token this module did not produce (tampered with, truncated, or from elsewhere)."""


def encode(created_at: datetime, row_id: int) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str) -> tuple[datetime, int]:
    """The position a cursor stands for; InvalidCursor when it is not one of ours."""
    try:
        padded = token + "=" * (-len(token) % 4)
        created, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(created), int(row_id)
    except (ValueError, TypeError, binascii.Error, OverflowError):
        raise InvalidCursor(token) from None


def older_than(created_col, id_col, position: tuple[datetime, int]) -> ColumnElement[bool]:
    """Rows after `position` in newest-first order."""
    created, row_id = position
    return (created_col < created) | ((created_col == created) & (id_col < row_id))


def newer_than(created_col, id_col, position: tuple[datetime, int]) -> ColumnElement[bool]:
    """Rows before `position` in newest-first order."""
    created, row_id = position
    return (created_col > created) | ((created_col == created) & (id_col > row_id))


def older_page(rows: list, size: int, key=lambda row: row.id) -> tuple[list, object | None]:
    """A newest-first page fetched with one row more than `size`: its rows, and the position
    (`key` of its last row) the next older page starts after, or None on the last page."""
    rows, more = rows[:size], len(rows) > size
    return rows, key(rows[-1]) if more and rows else None
