"""Idempotency-Key records: the first answer to a key, replayed for every retry with the same body.

A record is `in_progress` while one request owns it, `retryable` after that request failed in a
way a retry may finish (PSP unreachable), and `completed` once it holds the final answer.
Ownership is claimed with a compare-and-set UPDATE, so any number of processes can race on one
key and exactly one of them works on it at a time; an owner that died is taken over after its
lease runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select, update

from app.errors import PayBridgeError
from app.extensions import db
from app.models import IdempotencyRecord, utcnow

STATE_IN_PROGRESS = IdempotencyRecord.STATE_IN_PROGRESS
STATE_COMPLETED = IdempotencyRecord.STATE_COMPLETED
# The last attempt failed retryably: whoever comes next may claim the record at once.
STATE_RETRYABLE = "retryable"
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    """A response as first answered: what a replay sends again."""

    status: int
    body: dict


def check_key(key: str | None) -> str | None:
    """Validate an Idempotency-Key header value (None when absent)."""
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise PayBridgeError(
            "VALIDATION_ERROR",
            "Idempotency-Key must be 1 to 255 printable characters.",
            param="Idempotency-Key",
        )
    return key


# Built once: every create with a key runs them, and building a statement per call cost more
# CPU than SQLAlchemy's cached compilation of it.
_FIND = (
    select(IdempotencyRecord)
    .where(IdempotencyRecord.merchant_id == bindparam("merchant_id"))
    .where(IdempotencyRecord.idempotency_key == bindparam("key"))
    .execution_options(populate_existing=True)
)
_COMPLETE = (
    update(IdempotencyRecord)
    .where(IdempotencyRecord.id == bindparam("record_id"))
    .values(
        state=STATE_COMPLETED,
        response_status=bindparam("response_status"),
        response_body=bindparam("response_body"),
        updated_at=bindparam("now"),
    )
)


def find(merchant_id: int, key: str) -> IdempotencyRecord | None:
    """The record of a merchant's key, read fresh from the database."""
    return db.session.execute(_FIND, {"merchant_id": merchant_id, "key": key}).scalar_one_or_none()


def new_record(
    merchant_id: int, key: str, *, method: str, path: str, request_fingerprint: str
) -> IdempotencyRecord:
    """A record owned by the current request (added to the session, not flushed)."""
    now = utcnow()
    record = IdempotencyRecord(
        merchant_id=merchant_id,
        idempotency_key=key,
        method=method,
        path=path,
        request_fingerprint=request_fingerprint,
        state=STATE_IN_PROGRESS,
        created_at=now,
        updated_at=now,
    )
    db.session.add(record)
    return record


def matches(record: IdempotencyRecord, *, method: str, path: str, request_fingerprint: str) -> bool:
    """Whether a retry carries the same request as the one that made the record."""
    return (record.method, record.path, record.request_fingerprint) == (
        method,
        path,
        request_fingerprint,
    )


def claim(record_id: int, *, lease_seconds: float) -> bool:
    """Take ownership of a retryable record, or of one whose owner's lease ran out; commits."""
    now = utcnow()
    stale_before = now - timedelta(seconds=lease_seconds)
    result = db.session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.id == record_id)
        .where(
            or_(
                IdempotencyRecord.state == STATE_RETRYABLE,
                (IdempotencyRecord.state == STATE_IN_PROGRESS)
                & (IdempotencyRecord.updated_at < stale_before),
            )
        )
        .values(state=STATE_IN_PROGRESS, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def release(record_id: int) -> None:
    """Hand the record back after a retryable failure; the caller commits."""
    db.session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.id == record_id)
        .where(IdempotencyRecord.state == STATE_IN_PROGRESS)
        .values(state=STATE_RETRYABLE, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def complete(record_id: int, response: StoredResponse) -> None:
    """Store the final answer; the caller commits (with the change the answer describes).

    Core on the session's connection, in its transaction: no object the session holds changes.
    """
    db.session.connection().execute(
        _COMPLETE,
        {
            "record_id": record_id,
            "response_status": response.status,
            "response_body": response.body,
            "now": utcnow(),
        },
    )


def stored_response(record: IdempotencyRecord) -> StoredResponse | None:
    """The stored answer of a completed record."""
    if record.state != STATE_COMPLETED or record.response_status is None:
        return None
    return StoredResponse(record.response_status, record.response_body or {})


def lease_expired(record: IdempotencyRecord, *, lease_seconds: float, now: datetime) -> bool:
    """Whether the record's owner has had longer than its lease."""
    return record.updated_at < now - timedelta(seconds=lease_seconds)


def purge_older_than(cutoff: datetime) -> int:
    """Delete completed records older than `cutoff` (keys are honoured for a limited time)."""
    result = db.session.execute(
        IdempotencyRecord.__table__.delete()
        .where(IdempotencyRecord.created_at < cutoff)
        .where(IdempotencyRecord.state == STATE_COMPLETED)
    )
    return result.rowcount
