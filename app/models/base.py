"""Column types and helpers shared by every model."""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, DateTime, Integer, String
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

# SQLAlchemy's names of the MySQL family's dialects (mysql+pymysql is "mysql", mariadb+pymysql
# is "mariadb").
MYSQL_FAMILY = ("mysql", "mariadb")

# Microsecond timestamps on MySQL/MariaDB (its DATETIME keeps whole seconds by default),
# stored naive in UTC everywhere.
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

# 64-bit ids on MySQL/MariaDB; SQLite's rowid (an INTEGER PRIMARY KEY) on the demo's SQLite.
BigId = BigInteger().with_variant(Integer, "sqlite")


def exact_collation(dialect: Dialect) -> str | None:
    """The collation that compares identifiers byte for byte on this MySQL/MariaDB server: no
    case folding and no PAD SPACE (`utf8mb4_bin` itself still ignores trailing spaces); None on
    other databases, which compare exactly already (SQLite)."""
    if dialect.name not in MYSQL_FAMILY:
        return None
    if dialect.is_mariadb:
        return "utf8mb4_nopad_bin"
    if (dialect.server_version_info or (0,)) >= (8, 0, 17):
        return "utf8mb4_0900_bin"
    return "utf8mb4_bin"  # older MySQL has no NO PAD binary collation


class ExactString(TypeDecorator):
    """A VARCHAR for identifiers looked up by equality (public ids, merchant references,
    Idempotency-Keys, PSP ids): `a-1` and `A-1 ` are two values, as they are to the client.

    MySQL/MariaDB's default collation folds case and ignores trailing spaces; a TypeDecorator
    rather than `with_variant`, because on a `mysql://` URL a MariaDB server still has the
    dialect name "mysql" (migration 0009 gives existing columns the same collation)."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine:
        collation = exact_collation(dialect)
        if collation is None:
            return dialect.type_descriptor(String(self.impl.length))
        return dialect.type_descriptor(mysql.VARCHAR(self.impl.length, collation=collation))


_ALPHABET = string.ascii_letters + string.digits


def utcnow() -> datetime:
    """Naive UTC now, the form every timestamp column stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def naive_utc(value: datetime) -> datetime:
    """A time given with its zone (an API filter) in the form every timestamp column stores."""
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


def iso(value: datetime | None) -> str | None:
    """How a stored timestamp leaves PayBridge: ISO 8601 in UTC with a `Z`."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


# Random bytes map onto the alphabet without bias when below this multiple of its size.
_UNBIASED_BELOW = 256 - 256 % len(_ALPHABET)


def public_id(prefix: str, length: int = 24) -> str:
    """An unguessable id with a type prefix, like Stripe's (`pay_…`, `msg_…`): each character
    uniform over the alphabet, from one read of the system's randomness (secrets.choice per
    character read it once per character, a measurable part of a create's CPU)."""
    chars: list[str] = []
    while len(chars) < length:
        chars += [
            _ALPHABET[b % len(_ALPHABET)]
            for b in secrets.token_bytes(2 * length)
            if b < _UNBIASED_BELOW
        ]
    return prefix + "".join(chars[:length])


def index_hint(stmt, model, hint: str):
    """`stmt` with a MySQL/MariaDB index hint on `model`'s table ("FORCE INDEX (…)", "IGNORE
    INDEX (…)"); SQLite, which plans alone, reads it as before."""
    for dialect in MYSQL_FAMILY:
        stmt = stmt.with_hint(model, hint, dialect)
    return stmt


def indexes_across_merchants(model, *, keep: tuple[str, ...] = ()) -> tuple[str, ...]:
    """`model`'s indexes that do not lead with (hold) the merchant, but those in `keep`."""
    return tuple(
        sorted(
            ix.name
            for ix in model.__table__.indexes
            if "merchant_id" not in ix.columns.keys() and ix.name not in keep
        )
    )


def merchant_indexes_only(stmt, model, *, keep: tuple[str, ...] = ()):
    """`stmt`, whose WHERE holds one merchant's id, told not to read `model`'s table through an
    index that does not lead with the merchant (an operator's lists across merchants, a PSP id's
    lookup) but those in `keep`: walking one, a merchant's list reads every other merchant's
    rows on the way. MariaDB chose them for a merchant's page once two merchants were of a size
    (bench reads); the indexes leading with (merchant_id, livemode) serve every merchant list."""
    across = indexes_across_merchants(model, keep=keep)
    if not across:
        return stmt
    return index_hint(stmt, model, f"IGNORE INDEX ({', '.join(across)})")


# A list filter's value for "in any of the states" (refunded in part or in full; disputed).
ANY_STATE = "any"


def states_matching(states: type[StrEnum], wanted: str) -> list[str]:
    """The stored values a state filter (`wanted`: one state, or ANY_STATE) asks for."""
    return [state.value for state in states] if wanted == ANY_STATE else [wanted]


class Transitions(dict):
    """One kind of record's table of moves: each status, and the statuses it may move to. A
    status that allows no move is final. The code that moves such a record asks `allows`."""

    def allows(self, current, target) -> bool:
        return target in self.get(current, ())
