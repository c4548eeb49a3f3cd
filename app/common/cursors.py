"""List cursors: one opaque encoding of a row's position (created_at, id) for every keyset-paged
list (the API's `starting_after`, the dashboard's older/newer links), the WHERE clauses that
page from it, newest first, and how a page fetched with one row more splits off its next one.

A cursor is the position encrypted and authenticated (AES-GCM, a key derived from SECRET_KEY)
with the list it belongs to as associated data: it reveals no row id or time, and a cursor
that was altered, truncated, made for another list (or another merchant's list) or under
another SECRET_KEY is refused as InvalidCursor, before any query.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import struct
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import ColumnElement, Select
from sqlalchemy.orm import Session, scoped_session

from app.errors import PayBridgeError

_EPOCH = datetime(1970, 1, 1)
_POSITION = struct.Struct(">qq")  # microseconds since the epoch (naive UTC), row id
_NONCE_BYTES = 12
_TOKEN_BYTES = _NONCE_BYTES + _POSITION.size + 16  # nonce, ciphertext, GCM tag
# Base64 of _TOKEN_BYTES without padding: anything longer is not one of ours.
MAX_CURSOR_LENGTH = 64


class InvalidCursor(ValueError):
    """A token this module did not produce (tampered with, truncated, or from elsewhere)."""


@functools.lru_cache(maxsize=4)
def _cipher(secret_key: str | bytes) -> AESGCM:
    secret = secret_key.encode() if isinstance(secret_key, str) else secret_key
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"paybridge list cursor v1"
    ).derive(secret)
    return AESGCM(key)


def _current_cipher() -> AESGCM:
    return _cipher(current_app.config["SECRET_KEY"])


def encode(created_at: datetime | None, row_id: int, scope: str) -> str:
    """The opaque cursor of a position in the list named `scope` (e.g. "api.payments:7")."""
    micros = 0 if created_at is None else (created_at - _EPOCH) // timedelta(microseconds=1)
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _current_cipher().encrypt(nonce, _POSITION.pack(micros, row_id), scope.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def decode(token: str, scope: str) -> tuple[datetime, int]:
    """The position a cursor of the list `scope` stands for; InvalidCursor when it is not one
    this installation made for that list."""
    if not isinstance(token, str) or not token or len(token) > MAX_CURSOR_LENGTH:
        raise InvalidCursor("not a cursor")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise InvalidCursor("not a cursor") from None
    if len(raw) != _TOKEN_BYTES:
        raise InvalidCursor("not a cursor")
    try:
        plain = _current_cipher().decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], scope.encode())
    except InvalidTag:
        raise InvalidCursor("not a cursor of this list") from None
    micros, row_id = _POSITION.unpack(plain)
    try:
        return _EPOCH + timedelta(microseconds=micros), row_id
    except OverflowError:  # only a cursor made under a leaked key could say this
        raise InvalidCursor("not a cursor") from None


def encode_id(row_id: int, scope: str) -> str:
    """The opaque cursor of a list paged by id alone (newest first by id)."""
    return encode(None, row_id, scope)


def decode_id(token: str, scope: str) -> int:
    """The row id an id cursor of the list `scope` stands for; InvalidCursor otherwise."""
    return decode(token, scope)[1]


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


def newest_first_page(
    session: Session | scoped_session,
    stmt: Select,
    created_col,
    id_col,
    *,
    scope: str,
    starting_after: str | None,
    limit: int,
) -> tuple[list, bool, str | None]:
    """One page of an API list, newest first, after the `starting_after` cursor: its rows,
    whether more follow, and the next page's cursor (good only in `scope`, e.g. one merchant's
    list in one mode: another list's cursor is a 400 INVALID_CURSOR)."""
    if starting_after:
        try:
            position = decode(starting_after, scope)
        except InvalidCursor:
            raise PayBridgeError("INVALID_CURSOR", param="starting_after") from None
        stmt = stmt.where(older_than(created_col, id_col, position))
    stmt = stmt.order_by(created_col.desc(), id_col.desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    has_more, rows = len(rows) > limit, rows[:limit]
    last = rows[-1] if has_more and rows else None
    return rows, has_more, (encode(last.created_at, last.id, scope) if last else None)
