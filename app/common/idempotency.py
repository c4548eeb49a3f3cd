"""Idempotency-Key records: the first answer to a key, replayed for every retry with the same body.

A record is `in_progress` while one request owns it, `retryable` after that request failed in a
way a retry may finish (PSP unreachable), and `completed` once it holds the final answer.
Ownership is claimed with a compare-and-set UPDATE, so any number of processes can race on one
key and exactly one of them works on it at a time; an owner that died is taken over after its
lease runs out.

`IdempotentCommand` is the one way a request runs exactly once per key (payment creation, refund
creation): insert what it creates together with its record, do the outside work, store the
answer; a retry replays that answer, finishes the work a failed owner left, or waits for a
living owner.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, NoReturn, TypeVar

from flask import current_app
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.common.locks import retry_lock_conflicts
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

    @classmethod
    def of_error(cls, error: PayBridgeError) -> StoredResponse:
        return cls(error.status, error.to_dict())


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
    .where(IdempotencyRecord.livemode == bindparam("livemode"))
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


def find(merchant_id: int, key: str, *, livemode: bool = False) -> IdempotencyRecord | None:
    """The record of a merchant's key in one mode, read fresh from the database."""
    return db.session.execute(
        _FIND, {"merchant_id": merchant_id, "livemode": livemode, "key": key}
    ).scalar_one_or_none()


def new_record(
    merchant_id: int,
    key: str,
    *,
    method: str,
    path: str,
    request_fingerprint: str,
    livemode: bool = False,
) -> IdempotencyRecord:
    """A record owned by the current request (added to the session, not flushed)."""
    now = utcnow()
    record = IdempotencyRecord(
        merchant_id=merchant_id,
        livemode=livemode,
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


def release(record_id: int | None) -> None:
    """Hand the record back after a retryable failure; the caller commits. (A request without
    an Idempotency-Key has no record: nothing to do.)"""
    if record_id is None:
        return
    db.session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.id == record_id)
        .where(IdempotencyRecord.state == STATE_IN_PROGRESS)
        .values(state=STATE_RETRYABLE, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def complete(record_id: int | None, response: StoredResponse) -> None:
    """Store the final answer; the caller commits (with the change the answer describes). (A
    request without an Idempotency-Key has no record: nothing to store.)

    Core on the session's connection, in its transaction: no object the session holds changes.
    """
    if record_id is None:
        return
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


# -- the idempotent command ------------------------------------------------------------------

REPLAYED_HEADER = "Idempotent-Replayed"
# How often a retry looks again whether the key's owner has finished.
POLL_INTERVAL_SECONDS = 0.1

T = TypeVar("T")  # what the command creates (a Payment, a Refund)
S = TypeVar("S")  # what `start` hands to `finish`


@dataclass(frozen=True)
class IdempotentRequest:
    """A client's request as its key's record remembers it. Keys are per merchant and mode
    (the API key's): test and live requests never share one."""

    merchant_id: int
    key: str | None
    method: str
    path: str
    fingerprint: str
    livemode: bool = False

    def find_record(self) -> IdempotencyRecord | None:
        return find(self.merchant_id, self.key, livemode=self.livemode) if self.key else None

    def new_record(self) -> IdempotencyRecord | None:
        """A record owned by this request (added to the session), or None without a key."""
        if not self.key:
            return None
        return new_record(
            self.merchant_id,
            self.key,
            method=self.method,
            path=self.path,
            request_fingerprint=self.fingerprint,
            livemode=self.livemode,
        )

    def matches(self, record: IdempotencyRecord) -> bool:
        return matches(
            record, method=self.method, path=self.path, request_fingerprint=self.fingerprint
        )


@dataclass(frozen=True)
class CommandResult(Generic[T]):
    """The answer to a request: what it made and the (possibly replayed) response about it."""

    subject: T
    status: int
    body: dict
    replayed: bool = False


def error_from(stored: StoredResponse, *, replayed: bool = False) -> PayBridgeError:
    """The error a stored error response stands for, raised again on a replay."""
    error = stored.body.get("error", {})
    return PayBridgeError(
        error.get("code", "INTERNAL_ERROR"),
        error.get("message"),
        param=error.get("param"),
        details=error.get("details"),
        headers={REPLAYED_HEADER: "true"} if replayed else None,
    )


def owner_lease_seconds() -> float:
    """How long an owner may work on a key before another request may take it over: its PSP
    call with every network retry, and a margin."""
    config = current_app.config
    retries = config["STRIPE_MAX_NETWORK_RETRIES"]
    return config["STRIPE_TIMEOUT_SECONDS"] * (retries + 1) + 5 * retries + 10


class IdempotentCommand(ABC, Generic[T, S]):
    """A kind of request that takes effect once per Idempotency-Key; `run` decides, from the
    key's record, which of its steps runs. A subclass says what each step does."""

    what: str = "request"  # in messages: "payment", "refund"

    @abstractmethod
    def start(self, request: IdempotentRequest) -> S:
        """Insert what the request creates, with `request.new_record()`, and commit.

        An IntegrityError means a twin request (same key) or a duplicate committed first;
        a lock conflict means nothing was written and the insert runs again."""

    @abstractmethod
    def finish(self, started: S) -> tuple[T, StoredResponse]:
        """The work outside the database (the PSP call), and its answer stored; commits."""

    @abstractmethod
    def subject_of(self, record: IdempotencyRecord) -> T | None:
        """What the key's first request created, read fresh."""

    @abstractmethod
    def finish_claimed(self, record: IdempotencyRecord, subject: T) -> tuple[T, StoredResponse]:
        """Finish the work of an owner that failed retryably or died; commits."""

    @abstractmethod
    def in_progress_details(self, subject: T) -> dict:
        """What a REQUEST_IN_PROGRESS error names."""

    def duplicate(self, request: IdempotentRequest, error: IntegrityError) -> NoReturn:
        """The insert broke a unique rule that is not the key's: say which, or let it surface."""
        raise error

    def settled_meanwhile(self, record: IdempotencyRecord, subject: T) -> CommandResult[T] | None:
        """The answer when someone else (reconciliation) finished the work for an owner."""
        return None

    def replay_body(self, stored: StoredResponse, subject: T) -> dict:
        return stored.body

    def run(self, request: IdempotentRequest) -> CommandResult[T]:
        def begin() -> S | IdempotencyRecord:
            record = request.find_record()
            if record is not None:
                return record
            try:
                return self.start(request)
            except IntegrityError as exc:
                db.session.rollback()
                record = request.find_record()
                if record is None:
                    self.duplicate(request, exc)
                return record

        started = retry_lock_conflicts(begin, what=f"{self.what} insert")
        if isinstance(started, IdempotencyRecord):
            return self._resume(request, started)
        return self.answer(*self.finish(started))

    def _resume(self, request: IdempotentRequest, record: IdempotencyRecord) -> CommandResult[T]:
        """A request with a known key: replay its answer, finish its work, or wait for its owner."""
        if not request.matches(record):
            raise PayBridgeError("IDEMPOTENCY_KEY_REUSED", param="Idempotency-Key")
        deadline = time.monotonic() + float(current_app.config["IDEMPOTENCY_WAIT_SECONDS"])
        lease = owner_lease_seconds()
        while True:
            subject = self.subject_of(record)
            stored = stored_response(record)
            if stored is not None:
                if stored.status >= 400 or subject is None:
                    raise error_from(stored, replayed=True)
                body = self.replay_body(stored, subject)
                return CommandResult(subject, stored.status, body, replayed=True)
            if subject is None:  # cannot be: a record and its subject commit together
                raise PayBridgeError(
                    "INTERNAL_ERROR", f"The {self.what} of this Idempotency-Key is missing."
                )
            settled = self.settled_meanwhile(record, subject)
            if settled is not None:
                return settled
            claimable = record.state == STATE_RETRYABLE or lease_expired(
                record, lease_seconds=lease, now=utcnow()
            )
            if claimable and claim(record.id, lease_seconds=lease):
                return self.answer(*self.finish_claimed(record, subject))
            if time.monotonic() >= deadline:
                raise PayBridgeError(
                    "REQUEST_IN_PROGRESS",
                    details=self.in_progress_details(subject),
                    headers={"Retry-After": "1"},
                )
            db.session.rollback()  # end the snapshot so the next read sees the owner's commit
            time.sleep(POLL_INTERVAL_SECONDS)
            record = find(record.merchant_id, record.idempotency_key, livemode=record.livemode)

    @staticmethod
    def answer(subject: T, response: StoredResponse, *, replayed: bool = False) -> CommandResult[T]:
        if response.status >= 400:
            raise error_from(response, replayed=replayed)
        return CommandResult(subject, response.status, response.body, replayed=replayed)
