"""Delivering outbox notifications to a merchant's notify_url, signed per Standard Webhooks.

One attempt: load and check the row, claim it with an atomic UPDATE (which also pushes
`next_attempt_at` out by a lease, so no other worker sends the same attempt), commit, POST
without any transaction open, then record the outcome with a second UPDATE guarded by the
claim. A worker that dies mid-attempt leaves the row pending with an expired lease: the sweeper
enqueues it again. Delivery is therefore at least once; `webhook-id` lets clients drop repeats.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.cookiejar import DefaultCookiePolicy

import requests
from flask import current_app
from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.orm import aliased
from standardwebhooks import Webhook

from app.db_retry import retry_lock_conflicts
from app.errors import PayBridgeError
from app.extensions import db
from app.metrics import NOTIFICATION_DELIVERIES
from app.models import Merchant, Notification, NotificationAttempt, utcnow
from app.notifications.dispatch import dispatch_after_commit, enqueue_delivery
from app.notifications.targets import forbidden_target

log = logging.getLogger(__name__)

# A claimed attempt owns the row this long past the HTTP timeout; then the sweeper may retry it.
LEASE_MARGIN_SECONDS = 30
SWEEP_BATCH = 500
# A job may arrive a little before `next_attempt_at` (clocks of the scheduler and the worker).
DUE_TOLERANCE = timedelta(seconds=1)
USER_AGENT = "PayBridge-Notifications/1"
# A 2xx answer up to this size is read, so its keep-alive connection can be reused.
DRAIN_LIMIT = 64 * 1024
DRAIN_CHUNK = 8192

_thread_http = threading.local()

PENDING = Notification.STATUS_PENDING
DELIVERED = Notification.STATUS_DELIVERED
FAILED = Notification.STATUS_FAILED


@dataclass(frozen=True)
class AttemptResult:
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int


def deliver(notification_id: int) -> None:
    """Make one delivery attempt of a notification, if it is pending, due and first in line."""
    found = _load_for_delivery(notification_id)
    if found is None:
        log.warning("notification %s does not exist; nothing to deliver", notification_id)
        return
    notification, merchant, older_pending = found
    if notification.status != PENDING:
        log.info("notification %s is already %s", notification.public_id, notification.status)
        return
    now = utcnow()
    if notification.next_attempt_at and notification.next_attempt_at > now + DUE_TOLERANCE:
        # Another worker holds it, or a retry is scheduled for later: that job will send it.
        log.info(
            "notification %s is not due before %s",
            notification.public_id,
            notification.next_attempt_at,
        )
        return
    if older_pending:
        _wait_for_older(notification, older_pending, now)
        return
    if not merchant or not merchant.notify_url:
        _give_up(notification, "the merchant has no notify_url; set one, then resend")
        return

    attempt = notification.attempt_count
    url, secrets, msg_id, payload, payment_id = (
        merchant.notify_url,
        merchant.signing_secrets(),
        notification.public_id,
        notification.payload,
        notification.payment_id,
    )
    claimed_at = utcnow()
    claimed = retry_lock_conflicts(
        lambda: _claim(notification_id, attempt, claimed_at), what=f"notification {msg_id} claim"
    )
    if claimed != 1:
        log.info("notification %s attempt %s is taken by another worker", msg_id, attempt + 1)
        return

    refused = forbidden_target(
        url, allow_private=current_app.config["NOTIFY_ALLOW_PRIVATE_TARGETS"]
    )
    if refused:
        result = AttemptResult(False, None, refused, 0)
    else:
        result = send(url, msg_id, payload, secrets, timeout=_timeout())
    _record(notification_id, payment_id, msg_id, attempt, claimed_at, result)


def _load_for_delivery(
    notification_id: int,
) -> tuple[Notification, Merchant | None, str | None] | None:
    """The row, its merchant and the public id of an older pending one of its payment, if any.

    One round trip: a job runs per attempt, and three separate SELECTs were a third of its SQL.
    """
    found = db.session.execute(_LOAD, {"notification_id": notification_id}).first()
    return tuple(found) if found else None


def _load_statement():
    older = aliased(Notification)
    older_pending = (
        select(older.public_id)
        .where(
            older.payment_id == Notification.payment_id,
            older.id < Notification.id,
            older.status == PENDING,
        )
        .order_by(older.id)
        .limit(1)
        .scalar_subquery()
    )
    return (
        select(Notification, Merchant, older_pending)
        .outerjoin(Merchant, Merchant.id == Notification.merchant_id)
        .where(Notification.id == bindparam("notification_id"))
    )


def _this_attempt():
    """WHERE clauses naming the attempt a job works on: the row, still pending, that attempt."""
    return (
        Notification.id == bindparam("notification_id"),
        Notification.status == PENDING,
        Notification.attempt_count == bindparam("attempt"),
    )


def _claim_statement():
    return (
        update(Notification)
        .where(
            *_this_attempt(),
            or_(
                Notification.next_attempt_at.is_(None),
                Notification.next_attempt_at <= bindparam("due_before"),
            ),
        )
        .values(next_attempt_at=bindparam("lease_until"), last_attempt_at=bindparam("claimed_at"))
        .execution_options(synchronize_session=False)
    )


def _next_in_line_statement():
    return (
        select(Notification.id, Notification.attempt_count)
        .where(
            Notification.payment_id == bindparam("payment_id"),
            Notification.id > bindparam("notification_id"),
            Notification.status == PENDING,
        )
        .order_by(Notification.id)
        .limit(1)
    )


@functools.cache
def _outcome_statement(columns: tuple[str, ...]):
    """The guarded UPDATE of an attempt's outcome that sets `columns` (one per kind of outcome)."""
    return (
        update(Notification)
        .where(*_this_attempt(), Notification.last_attempt_at == bindparam("claimed_at"))
        .values({column: bindparam(f"new_{column}") for column in columns})
        .execution_options(synchronize_session=False)
    )


# Built once: constructing these statements per job cost more CPU than running them (py-spy:
# a fifth of a delivery went to SQLAlchemy's clause construction and coercions).
_LOAD = _load_statement()
_CLAIM = _claim_statement()
_NEXT_IN_LINE = _next_in_line_statement()
_ADD_ATTEMPT = insert(NotificationAttempt)


def _run(statement, params: dict):
    """A prebuilt Core statement on the session's connection, in its transaction.

    Not `db.session.execute`: the ORM's bulk-statement path around an UPDATE or INSERT cost
    about a tenth of a delivery's CPU, and these statements touch no object the session holds.
    """
    return db.session.connection().execute(statement, params)


def _claim(notification_id: int, attempt: int, claimed_at: datetime) -> int:
    """Take this attempt with an atomic UPDATE that also sets a lease; commits. 1 if taken."""
    lease = timedelta(seconds=_timeout() + LEASE_MARGIN_SECONDS)
    claimed = _run(
        _CLAIM,
        {
            "notification_id": notification_id,
            "attempt": attempt,
            "due_before": claimed_at + DUE_TOLERANCE,
            "lease_until": claimed_at + lease,
            "claimed_at": claimed_at,
        },
    ).rowcount
    db.session.commit()  # ends the transaction: none stays open during the HTTP call
    return claimed


def send(
    url: str, msg_id: str, payload: dict, secrets: list[str], *, timeout: float
) -> AttemptResult:
    """POST the payload, signed with every secret, and say what happened. Never raises."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    started = time.perf_counter()
    try:
        headers = signed_headers(msg_id, body, secrets, datetime.now(UTC))
    except Exception as exc:  # a corrupt secret must not crash the worker loop
        return AttemptResult(False, None, f"cannot sign: {type(exc).__name__}", 0)
    status_code = None
    try:
        with _http_session().post(
            url,
            data=body.encode(),
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        ) as response:
            status_code = response.status_code
            if 200 <= status_code < 300:
                error = None
                _drain(response)
            elif 300 <= status_code < 400:
                error = f"HTTP {status_code}: redirects are not followed"
            else:
                error = f"HTTP {status_code}"
                snippet = _read_snippet(response)
                if snippet:
                    error += f": {snippet}"
    except requests.Timeout:
        error = f"timed out after {timeout:g}s"
    except requests.ConnectionError as exc:
        error = _connection_error(exc)
    except requests.RequestException as exc:
        error = f"request failed: {type(exc).__name__}: {exc}"
    duration_ms = int((time.perf_counter() - started) * 1000)
    return AttemptResult(error is None, status_code, error[:500] if error else None, duration_ms)


def _http_session() -> requests.Session:
    """This thread's HTTP client, which keeps connections to client apps open between attempts.

    A new connection per notification costs a TCP and, for a real client app, a TLS handshake:
    more CPU than the rest of a delivery. The session keeps no cookies, so nothing one client
    app sets is ever sent to another.
    """
    session = getattr(_thread_http, "session", None)
    if session is None:
        session = requests.Session()
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        _thread_http.session = session
    return session


def _drain(response: requests.Response) -> None:
    """Read a short answer to its end, so its connection can carry the next attempt.

    Never raises: the 2xx already counts as delivered, whatever happens to the rest of the body.
    """
    read = 0
    try:
        for chunk in response.iter_content(DRAIN_CHUNK):
            read += len(chunk)
            if read > DRAIN_LIMIT:
                return  # a long answer: closing the connection is cheaper than reading it
    except Exception:
        return  # the connection is closed with the response


def signed_headers(msg_id: str, body: str, secrets: list[str], at: datetime) -> dict[str, str]:
    """Standard Webhooks headers; while a merchant rotates, each secret adds a signature."""
    signatures = " ".join(Webhook(secret).sign(msg_id, at, body) for secret in secrets)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


def resend(notification_id: int) -> Notification:
    """Put a delivered or failed notification back to pending with a fresh retry schedule.

    The body and `webhook-id` stay the same, so a client that already has it drops the copy.
    The caller commits; the job is enqueued after that commit.
    """
    notification = db.session.execute(
        select(Notification)
        .where(Notification.id == notification_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if notification is None:
        raise PayBridgeError("NOTIFICATION_NOT_FOUND", f"No notification {notification_id}.")
    if notification.status == PENDING:
        raise PayBridgeError(
            "NOTIFICATION_PENDING",
            f"Notification {notification.public_id} is still being delivered.",
        )
    notification.status = PENDING
    notification.attempt_count = 0
    notification.next_attempt_at = utcnow()
    notification.enqueued_at = None
    notification.last_error = None
    notification.delivered_at = None
    db.session.flush()
    dispatch_after_commit(db.session(), notification)
    log.info("notification %s queued for resending", notification.public_id)
    return notification


def sweep_due(now: datetime | None = None) -> int:
    """Enqueue pending notifications that are due but not queued (or whose job was lost)."""
    now = now or utcnow()
    lost_before = now - timedelta(seconds=_lost_after())
    rows = db.session.execute(
        select(Notification.id, Notification.attempt_count)
        .where(
            Notification.status == PENDING,
            or_(Notification.next_attempt_at.is_(None), Notification.next_attempt_at <= now),
            or_(
                Notification.enqueued_at.is_(None),
                and_(
                    Notification.enqueued_at <= lost_before,
                    or_(
                        Notification.next_attempt_at.is_(None),
                        Notification.next_attempt_at <= lost_before,
                    ),
                ),
            ),
        )
        .order_by(Notification.next_attempt_at, Notification.id)
        .limit(SWEEP_BATCH)
    ).all()
    db.session.commit()
    enqueued = 0
    for notification_id, attempt in rows:
        if not enqueue_delivery(notification_id, attempt):
            break  # Redis is down: the next sweep tries again
        enqueued += 1
    if rows:
        log.info("sweeper enqueued %d of %d due notifications", enqueued, len(rows))
    return enqueued


def _wait_for_older(notification: Notification, older_public_id: str, now: datetime) -> None:
    """Leave this one queued behind an older pending notification of its payment (order).

    The older one's delivery enqueues this one when it finishes (`_next_in_line`); until then
    `enqueued_at` marks this one as queued, and the sweeper looks again after a while.
    """
    db.session.execute(
        update(Notification)
        .where(Notification.id == notification.id, Notification.status == PENDING)
        .values(enqueued_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    log.info(
        "notification %s waits for the older %s of the same payment",
        notification.public_id,
        older_public_id,
    )


def _give_up(notification: Notification, reason: str) -> None:
    changed = db.session.execute(
        update(Notification)
        .where(Notification.id == notification.id, Notification.status == PENDING)
        .values(status=FAILED, last_error=reason, next_attempt_at=None, enqueued_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    following = _next_in_line(notification.payment_id, notification.id) if changed else None
    db.session.commit()
    if changed:
        NOTIFICATION_DELIVERIES.labels("failed").inc()
        log.warning("notification %s failed: %s", notification.public_id, reason)
        _enqueue_next(following)


def _record(
    notification_id: int,
    payment_id: int | None,
    msg_id: str,
    attempt: int,
    claimed_at: datetime,
    result: AttemptResult,
) -> None:
    """Store the attempt and move the row on, guarded by the claim: a late worker changes none.

    A final outcome also looks up the next pending notification of the payment in the same
    transaction, to enqueue it once that commits.
    """
    now = utcnow()
    schedule = list(current_app.config["NOTIFY_RETRY_SCHEDULE"])
    values: dict = {"attempt_count": attempt + 1, "enqueued_at": None}
    retry_in = None
    if result.ok:
        outcome = "delivered"
        values.update(status=DELIVERED, delivered_at=now, next_attempt_at=None, last_error=None)
    elif attempt < len(schedule):
        outcome = "retrying"
        retry_in = float(schedule[attempt])
        values.update(next_attempt_at=now + timedelta(seconds=retry_in), last_error=result.error)
    else:
        outcome = "failed"
        values.update(status=FAILED, next_attempt_at=None, last_error=result.error)

    def store() -> tuple[int, tuple[int, int] | None]:
        _run(
            _ADD_ATTEMPT,
            {
                "notification_id": notification_id,
                "attempted_at": claimed_at,
                "status_code": result.status_code,
                "error": result.error,
                "duration_ms": result.duration_ms,
            },
        )
        changed = _run(
            _outcome_statement(tuple(sorted(values))),
            {
                "notification_id": notification_id,
                "attempt": attempt,
                "claimed_at": claimed_at,
                **{f"new_{column}": value for column, value in values.items()},
            },
        ).rowcount
        final = changed and retry_in is None
        following = _next_in_line(payment_id, notification_id) if final else None
        db.session.commit()
        return changed, following

    # The POST already happened: losing its outcome to a lock conflict would send it again.
    changed, following = retry_lock_conflicts(store, what=f"notification {msg_id} outcome")
    NOTIFICATION_DELIVERIES.labels(outcome).inc()
    if not changed:
        log.warning("notification %s attempt %d finished after its lease", msg_id, attempt + 1)
        return
    if result.ok:
        log.info(
            "notification %s delivered (attempt %d, %d ms)", msg_id, attempt + 1, result.duration_ms
        )
    elif retry_in is not None:
        log.info(
            "notification %s attempt %d failed (%s); retry in %gs",
            msg_id,
            attempt + 1,
            result.error,
            retry_in,
        )
        enqueue_delivery(notification_id, attempt + 1, delay_seconds=retry_in)
    else:
        log.warning(
            "notification %s failed after %d attempts: %s", msg_id, attempt + 1, result.error
        )
    _enqueue_next(following)


def _next_in_line(payment_id: int | None, notification_id: int) -> tuple[int, int] | None:
    """(id, attempt) of the next pending notification of the payment after this one, if any."""
    if payment_id is None:
        return None
    following = _run(
        _NEXT_IN_LINE, {"payment_id": payment_id, "notification_id": notification_id}
    ).first()
    return tuple(following) if following else None


def _enqueue_next(following: tuple[int, int] | None) -> None:
    """Now that an older notification is final, the next one of its payment may go."""
    if following:
        enqueue_delivery(*following)


def _timeout() -> float:
    return float(current_app.config["NOTIFY_TIMEOUT_SECONDS"])


def _lost_after() -> float:
    return float(current_app.config["NOTIFY_LOST_JOB_SECONDS"])


def _read_snippet(response: requests.Response) -> str:
    try:
        raw = response.raw.read(200, decode_content=True) or b""
    except Exception:
        return ""
    return " ".join(raw.decode("utf-8", "replace").split())[:200]


def _connection_error(exc: requests.ConnectionError) -> str:
    text = str(exc)
    for needle, label in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "host not found"),
        ("nodename nor servname", "host not found"),
        ("Temporary failure in name resolution", "host not found"),
        ("Connection reset", "connection reset"),
        ("RemoteDisconnected", "connection closed without a response"),
    ):
        if needle in text:
            return label
    return f"connection failed: {text[:300]}"
