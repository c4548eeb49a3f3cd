"""Column types and helpers shared by every model."""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.dialects import mysql

# Microsecond timestamps on MySQL/MariaDB (its DATETIME keeps whole seconds by default),
# stored naive in UTC everywhere.
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

# 64-bit ids on MySQL/MariaDB; SQLite's rowid (an INTEGER PRIMARY KEY) on the demo's SQLite.
BigId = BigInteger().with_variant(Integer, "sqlite")

_ALPHABET = string.ascii_letters + string.digits


def utcnow() -> datetime:
    """Naive UTC now, the form every timestamp column stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(value: datetime | None) -> str | None:
    """How a stored timestamp leaves PayBridge: ISO 8601 in UTC with a `Z`."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def public_id(prefix: str, length: int = 24) -> str:
    """An unguessable id with a type prefix, like Stripe's (`pay_…`, `msg_…`)."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


class Transitions(dict):
    """One kind of record's table of moves: each status, and the statuses it may move to. A
    status that allows no move is final. The code that moves such a record asks `allows`."""

    def allows(self, current, target) -> bool:
        return target in self.get(current, ())
