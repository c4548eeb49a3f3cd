"""Delivering outbox notifications to merchants' notification endpoints, signed per Standard
Webhooks with each endpoint's secret(s).

The outbox is the queue: each notification has one delivery row per endpoint that receives it
(`outbox.py`); no job or Redis entry carries one. Delivery runs in cycles, which the worker's
pump (`pump.py`) keeps going and `deliver_due` runs once:

0. `fan_out` (`fanout.py`): new notifications get their delivery rows, in id order.
1. `claim_due`: one short transaction takes up to N due pending deliveries, each the oldest
   pending one of its (endpoint, payment) (so each endpoint gets a payment's notifications in
   order, and a slow endpoint holds up no other), with FOR UPDATE SKIP LOCKED (other processes
   take other rows), and pushes their `next_attempt_at` out by a lease.
2. `attempt`: the signed POST, on a thread of its own, with no transaction open.
3. `record_outcomes`: one transaction stores the attempts (request and response, bounded),
   moves each delivery on, every UPDATE guarded by its claim, so an outcome that arrives after
   its lease ran out changes nothing, and sums each notification's deliveries up on it.

A process that dies mid-attempt leaves rows whose lease runs out; a later cycle claims them
again. Delivery is therefore at least once; `webhook-id` lets clients drop repeats. A Redis
outage neither delays nor loses a notification: nothing about delivery lives there.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookiejar import DefaultCookiePolicy

import requests
from flask import current_app
from sqlalchemy import Integer, bindparam, exists, func, insert, select, text, update
from sqlalchemy.orm import aliased
from standardwebhooks import Webhook

from app.common.locks import retry_lock_conflicts, row_locks_only_connection
from app.extensions import db
from app.metrics import NOTIFICATION_DELIVERIES
from app.models import (
    Notification,
    NotificationAttempt,
    NotificationDelivery,
    NotificationEndpoint,
    utcnow,
)
from app.models.base import index_hint
from app.models.endpoint import signing_secrets
from app.models.events import notification_body
from app.notifications import signals
from app.notifications.fanout import ANY_NEW, fan_out_all
from app.notifications.targets import (
    IPNetwork,
    PinnedAdapter,
    Resolver,
    Target,
    TargetRefused,
    check_target,
    parse_networks,
    pin,
    system_resolver,
)

log = logging.getLogger(__name__)

# A claimed attempt owns the row this long past the HTTP timeout; then another cycle may retry it.
LEASE_MARGIN_SECONDS = 30
USER_AGENT = "PayBridge-Notifications/1"
# A 2xx answer up to this size is read, so its keep-alive connection can be reused.
DRAIN_LIMIT = 64 * 1024
DRAIN_CHUNK = 8192
# What an attempt keeps of the answer, for the delivery log.
RESPONSE_BODY_LIMIT = 4096
RESPONSE_HEADERS_LIMIT = 50
REQUEST_BODY_LIMIT = 256 * 1024

_thread_http = threading.local()

PENDING = NotificationDelivery.STATUS_PENDING
DELIVERED = NotificationDelivery.STATUS_DELIVERED
FAILED = NotificationDelivery.STATUS_FAILED
Delivery = NotificationDelivery


@dataclass(frozen=True)
class Claim:
    """One claimed delivery attempt: everything the POST and its outcome need, no ORM object."""

    delivery_id: int
    notification_id: int
    endpoint_id: int
    attempt: int  # attempts made before this one
    msg_id: str
    payload: dict
    url: str
    secrets: tuple[str, ...]
    claimed_at: datetime
    # False: the endpoint was disabled after this delivery was queued; it is failed, not sent.
    endpoint_enabled: bool = True


@dataclass(frozen=True)
class AttemptResult:
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    # False: nothing was sent because nothing can be: fail now, no attempt row.
    sent: bool = True
    # What was sent and what came back (bounded), for the delivery log.
    request_headers: dict | None = None
    request_body: str | None = None
    response_headers: dict | None = None
    response_body: str | None = None


@dataclass(frozen=True)
class DeliveryOptions:
    """The settings a POST needs, read once from the config so sender threads need no app."""

    timeout: float
    # Non-public networks notify URLs may reach (NOTIFY_ALLOWED_NETWORKS).
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False)

    @property
    def lease(self) -> timedelta:
        """How long a claimed attempt owns its row: the POST's timeout and a margin."""
        return timedelta(seconds=self.timeout + LEASE_MARGIN_SECONDS)

    @classmethod
    def from_config(cls, config) -> DeliveryOptions:
        return cls(
            timeout=float(config["NOTIFY_TIMEOUT_SECONDS"]),
            allowed_networks=parse_networks(config["NOTIFY_ALLOWED_NETWORKS"]),
        )


def deliver_due(limit: int | None = None) -> int:
    """One delivery cycle in this thread: claim what is due, POST it in parallel, record it.

    What the worker's pump does continuously; here for `flask notifications deliver` and tests.
    Returns how many attempts it made.
    """
    limit = limit or int(current_app.config["NOTIFY_CONCURRENCY"])
    fan_out_all()
    claims = claim_due(limit)
    if not claims:
        return 0
    options = DeliveryOptions.from_config(current_app.config)
    with ThreadPoolExecutor(len(claims), thread_name_prefix="notify") as pool:
        results = list(pool.map(lambda claim: attempt(claim, options), claims))
    record_outcomes(list(zip(claims, results, strict=True)))
    return len(claims)


# The one rule of what is due: pending, and its time (or its lease) has come.
_IS_DUE = (Delivery.status == PENDING, Delivery.next_attempt_at <= bindparam("now"))


def _due_ids_statement(limit: int, excluding: bool):
    older = aliased(Delivery)
    behind_an_older_one = (
        exists()
        .where(
            older.endpoint_id == Delivery.endpoint_id,
            older.payment_id == Delivery.payment_id,
            older.id < Delivery.id,
            older.status == PENDING,
        )
        .correlate(Delivery)
    )
    statement = select(Delivery.id, Delivery.endpoint_id).where(*_IS_DUE, ~behind_an_older_one)
    if excluding:  # endpoints that have all the deliveries in flight they may have
        statement = statement.where(
            Delivery.endpoint_id.not_in(bindparam("full_endpoints", expanding=True))
        )
        # Oldest due first, read in the due index's order: with the endpoint excluded the
        # optimizer would otherwise take the endpoint index and sort every due row.
        statement = index_hint(
            statement, Delivery, "FORCE INDEX (ix_notification_deliveries_status_next_attempt)"
        )
    return (
        statement.order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


# Built once: constructing statements per cycle costs more CPU than running them.
_due_ids = functools.cache(_due_ids_statement)


@functools.cache
def _due_ids_of_endpoint(limit: int):
    """The oldest due deliveries of one endpoint (its index range), as the claim takes them."""
    return _due_ids_statement(limit, False).where(Delivery.endpoint_id == bindparam("endpoint_id"))


# Which endpoints have due deliveries: one index dive per endpoint (the table is short).
_ENDPOINTS_WITH_DUE = select(NotificationEndpoint.id).where(
    NotificationEndpoint.deleted_at.is_(None),
    exists().where(Delivery.endpoint_id == NotificationEndpoint.id, *_IS_DUE),
)


def endpoints_with_due(now: datetime | None = None) -> set[int]:
    """The endpoints that have due deliveries (the pump's fair shares go to each of them)."""
    with db.engine.connect() as conn:
        return set(conn.execute(_ENDPOINTS_WITH_DUE, {"now": now or utcnow()}).scalars())


_ANY_DUE = select(Delivery.id).where(*_IS_DUE).limit(1)
_COUNT_DUE = select(func.count()).select_from(Delivery).where(*_IS_DUE)
_DETAILS = (
    select(
        Delivery.id,
        Delivery.notification_id,
        Delivery.endpoint_id,
        Delivery.attempt_count,
        Notification.public_id,
        Notification.payload,
        NotificationEndpoint.url,
        NotificationEndpoint.signing_secret,
        NotificationEndpoint.previous_signing_secret,
        NotificationEndpoint.previous_signing_secret_expires_at,
        NotificationEndpoint.enabled,
    )
    .join(Notification, Notification.id == Delivery.notification_id)
    .join(NotificationEndpoint, NotificationEndpoint.id == Delivery.endpoint_id)
    .where(Delivery.id.in_(bindparam("ids", expanding=True)))
    .order_by(Delivery.id)
)
_LEASE = (
    update(Delivery)
    .where(Delivery.id.in_(bindparam("ids", expanding=True)), Delivery.status == PENDING)
    .values(next_attempt_at=bindparam("lease_until"), last_attempt_at=bindparam("claimed_at"))
)
_ADD_ATTEMPT = insert(NotificationAttempt)
_LOCK_NOTIFICATIONS = (
    select(Notification.id)
    .where(Notification.id.in_(bindparam("ids", expanding=True)))
    .order_by(Notification.id)
    .with_for_update()
)
# A notification sums its deliveries up: pending while one is, failed when one failed (and none
# is pending), else delivered. Run with the notification locked, after its deliveries moved on.
_SUMMARY = """
      status = CASE
        WHEN EXISTS (SELECT 1 FROM notification_deliveries d
                     WHERE d.notification_id = notifications.id AND d.status = 'pending')
          THEN 'pending'
        WHEN EXISTS (SELECT 1 FROM notification_deliveries d
                     WHERE d.notification_id = notifications.id AND d.status = 'failed')
          THEN 'failed'
        ELSE 'delivered' END,
      next_attempt_at = (SELECT MIN(d.next_attempt_at) FROM notification_deliveries d
                         WHERE d.notification_id = notifications.id AND d.status = 'pending'),
      delivered_at = CASE
        WHEN EXISTS (SELECT 1 FROM notification_deliveries d
                     WHERE d.notification_id = notifications.id AND d.status <> 'delivered')
          THEN NULL
        ELSE COALESCE(delivered_at, :now) END,
      updated_at = :now
    WHERE id IN :notification_ids
"""
_SUMMARISE = text(
    "UPDATE notifications SET attempt_count = attempt_count + :attempts,"
    " last_attempt_at = :attempted_at, last_error = :last_error," + _SUMMARY
).bindparams(bindparam("notification_ids", expanding=True))
# The summary alone, after deliveries moved on outside a cycle (a redelivery, a disable).
_RESUMMARISE = text("UPDATE notifications SET" + _SUMMARY).bindparams(
    bindparam("notification_ids", expanding=True)
)


_COUNT_NEW = select(func.count()).select_from(ANY_NEW.limit(None).subquery())


def count_due(now: datetime | None = None) -> int:
    """How many pending deliveries are due now, and notifications not fanned out yet (each
    one delivery or more to come): the backlog /metrics shows."""
    due = db.session.execute(_COUNT_DUE, {"now": now or utcnow()}).scalar_one()
    return due + db.session.execute(_COUNT_NEW).scalar_one()


def any_due(now: datetime | None = None) -> bool:
    """Whether a pending delivery is due or a notification waits to be fanned out: the pump's
    cheap, lock-free check when idle."""
    with db.engine.connect() as conn:
        return (
            conn.execute(_ANY_DUE, {"now": now or utcnow()}).first() is not None
            or conn.execute(ANY_NEW).first() is not None
        )


def claim_due(
    limit: int,
    room: dict[int, int] | None = None,
    others: int | None = None,
    first: dict[int, int] | None = None,
) -> list[Claim]:
    """Take up to `limit` due attempts for this process, each with a lease; commits.

    `room`: how many more attempts some endpoints may have in flight now (the pump's fair
    shares), `others` that of any endpoint not named (None: no limit); those with no room
    left are not even read. `first`: endpoints served before the oldest-first rest, each up to
    that many, in the order given (their shares: so an endpoint whose deliveries are not the
    oldest due still gets its turns; the pump lists the longest waiting first)."""
    claimed_at = utcnow()
    lease_until = claimed_at + DeliveryOptions.from_config(current_app.config).lease
    room = room or {}
    full = sorted(endpoint for endpoint, n in room.items() if n <= 0)

    def take() -> list:
        # Row locks only: the locking read takes no gap locks that would hold up the webhooks
        # inserting new notifications meanwhile.
        with row_locks_only_connection() as conn, conn.begin():
            due: list = []
            for endpoint_id, n in (first or {}).items():  # in the order given
                if n > 0 and len(due) < limit:
                    due += conn.execute(
                        _due_ids_of_endpoint(min(n, limit - len(due))),
                        {"now": claimed_at, "endpoint_id": endpoint_id},
                    ).all()
            if len(due) < limit:
                rest = _due_ids(limit - len(due), bool(full))
                due += conn.execute(rest, {"now": claimed_at, "full_endpoints": full}).all()
            ids, left, seen = [], dict(room), set()
            for delivery_id, endpoint_id in due:  # oldest first, each endpoint up to its room
                if delivery_id in seen:  # read twice (first, then with the rest)
                    continue
                seen.add(delivery_id)
                if endpoint_id not in left:
                    left[endpoint_id] = limit if others is None else others
                if left[endpoint_id] > 0:
                    ids.append(delivery_id)
                    left[endpoint_id] -= 1
            if not ids:
                return []
            rows = conn.execute(_DETAILS, {"ids": ids}).all()
            conn.execute(_LEASE, {"ids": ids, "lease_until": lease_until, "claimed_at": claimed_at})
            return rows

    rows = retry_lock_conflicts(take, what="notification claim")
    return [
        Claim(
            delivery_id=row.id,
            notification_id=row.notification_id,
            endpoint_id=row.endpoint_id,
            attempt=row.attempt_count,
            msg_id=row.public_id,
            payload=row.payload,
            url=row.url,
            secrets=tuple(
                signing_secrets(
                    row.signing_secret,
                    row.previous_signing_secret,
                    row.previous_signing_secret_expires_at,
                    claimed_at,
                )
            ),
            claimed_at=claimed_at,
            endpoint_enabled=bool(row.enabled),
        )
        for row in rows
    ]


def attempt(claim: Claim, options: DeliveryOptions) -> AttemptResult:
    """Make one claimed attempt: check the target (resolving its host once), POST to the
    address that was checked. Never raises (runs on a pool thread).

    A refused target is a failed attempt with the reason, retried on the schedule like any
    other (the merchant may fix the URL or its DNS meanwhile); nothing is sent to it.

    A delivery of an endpoint disabled since it was queued (a redelivery racing the merchant's
    disable) fails unsent: disabling fails what is pending, and this is what slipped past."""
    if not claim.endpoint_enabled:
        return AttemptResult(False, None, "not sent: the endpoint is disabled", 0, sent=False)
    try:
        try:
            target = check_target(
                claim.url, allowed_networks=options.allowed_networks, resolver=options.resolver
            )
        except TargetRefused as refused:
            return AttemptResult(False, None, f"URL refused: {refused.reason}", 0)
        return send(
            target, claim.msg_id, claim.payload, list(claim.secrets), timeout=options.timeout
        )
    except Exception as exc:  # a bug here must cost one attempt, not the pump
        log.exception("notification %s: the attempt failed unexpectedly", claim.msg_id)
        return AttemptResult(False, None, f"internal error: {type(exc).__name__}", 0)


@functools.cache
def _outcome_statement(columns: tuple[str, ...]):
    """The guarded UPDATE of an attempt's outcome that sets `columns` (one per kind of outcome):
    the delivery, still pending, at that attempt, and still claimed by this cycle."""
    return (
        update(Delivery)
        .where(
            Delivery.id == bindparam("delivery_id"),
            Delivery.status == PENDING,
            Delivery.attempt_count == bindparam("attempt"),
            Delivery.last_attempt_at == bindparam("claimed_at"),
        )
        .values({column: bindparam(f"new_{column}") for column in columns})
    )


@dataclass(frozen=True)
class _Outcome:
    claim: Claim
    result: AttemptResult
    kind: str  # delivered | retrying | failed
    retry_in: float | None
    values: dict


def _outcome(claim: Claim, result: AttemptResult, now: datetime, schedule: list) -> _Outcome:
    """What an attempt's result makes of its delivery: delivered, retried later, or failed."""
    if not result.sent:  # nothing can be sent: failed at once, no attempt counted
        values = {"status": FAILED, "next_attempt_at": None, "last_error": result.error}
        return _Outcome(claim, result, "failed", None, values)
    values = {"attempt_count": claim.attempt + 1, "last_error": result.error}
    if result.ok:
        values.update(status=DELIVERED, delivered_at=now, next_attempt_at=None)
        return _Outcome(claim, result, "delivered", None, values)
    if claim.attempt < len(schedule):
        retry_in = float(schedule[claim.attempt])
        values["next_attempt_at"] = now + timedelta(seconds=retry_in)
        return _Outcome(claim, result, "retrying", retry_in, values)
    values.update(status=FAILED, next_attempt_at=None)
    return _Outcome(claim, result, "failed", None, values)


def record_outcomes(finished: list[tuple[Claim, AttemptResult]]) -> None:
    """Store a batch of attempts, move each delivery on and sum each notification up, in one
    transaction (retried after a lock conflict: the POSTs already happened, and losing their
    outcomes would repeat them). Notifications are locked first, in id order, as every writer
    of both does: their summaries then read their deliveries as committed."""
    if not finished:
        return
    now = utcnow()
    schedule = list(current_app.config["NOTIFY_RETRY_SCHEDULE"])
    outcomes = sorted(
        (_outcome(claim, result, now, schedule) for claim, result in finished),
        key=lambda o: o.claim.delivery_id,  # one lock order for every writer
    )
    attempt_rows = [
        {
            "notification_id": o.claim.notification_id,
            "delivery_id": o.claim.delivery_id,
            "attempted_at": o.claim.claimed_at,
            "status_code": o.result.status_code,
            "error": o.result.error,
            "duration_ms": o.result.duration_ms,
            "url": o.claim.url,
            "request_headers": o.result.request_headers,  # the body: the notification's
            "response_headers": o.result.response_headers,
            "response_body": o.result.response_body,
        }
        for o in outcomes
        if o.result.sent
    ]
    notification_ids = sorted({o.claim.notification_id for o in outcomes})

    def store() -> list[int]:
        with row_locks_only_connection() as conn, conn.begin():
            conn.execute(_LOCK_NOTIFICATIONS, {"ids": notification_ids})
            if attempt_rows:
                conn.execute(_ADD_ATTEMPT, attempt_rows)
            changed = _move_on(conn, outcomes, now)
            _summarise(conn, [o for o, n in zip(outcomes, changed, strict=True) if n], now)
            return changed

    changed = retry_lock_conflicts(store, what=f"{len(outcomes)} notification outcome(s)")
    for o, rowcount in zip(outcomes, changed, strict=True):
        NOTIFICATION_DELIVERIES.labels(o.kind).inc()
        _log_outcome(o, bool(rowcount))
    signals.attempted.send(  # what was sent only: an unsent delivery says nothing of health
        [
            signals.Attempted(o.claim.endpoint_id, o.claim.claimed_at, o.result.ok)
            for o in outcomes
            if o.result.sent
        ]
    )


# Deliveries of one claim that were delivered, moved on in one statement (the common outcome;
# per row, `_outcome_statement` would cost a round trip each). The guard is the per-row one's:
# still pending, at that attempt, and still this claim's (`last_attempt_at`).
_DELIVERED = (
    update(Delivery)
    .where(
        Delivery.id.in_(bindparam("ids", expanding=True)),
        Delivery.status == PENDING,
        Delivery.attempt_count == bindparam("attempt"),
        Delivery.last_attempt_at == bindparam("claimed_at"),
    )
    .values(
        status=DELIVERED,
        delivered_at=bindparam("now"),
        next_attempt_at=None,
        last_error=None,
        attempt_count=bindparam("attempt", type_=Integer) + 1,
    )
)
# Which of them that statement moved (when not all: another cycle's claim took some over).
_DELIVERED_NOW = select(Delivery.id).where(
    Delivery.id.in_(bindparam("ids", expanding=True)),
    Delivery.status == DELIVERED,
    Delivery.delivered_at == bindparam("now"),
    Delivery.last_attempt_at == bindparam("claimed_at"),
)


def _move_on(conn, outcomes: list[_Outcome], now: datetime) -> list[int]:
    """Apply each outcome to its delivery, guarded by its claim; per outcome, 1 when it moved
    the delivery on, 0 when the claim had lost it (its lease ran out and another took it)."""
    changed: dict[int, int] = {}
    delivered: dict[tuple[datetime, int], list[int]] = {}
    for o in outcomes:
        if o.kind == "delivered":
            key = (o.claim.claimed_at, o.claim.attempt)
            delivered.setdefault(key, []).append(o.claim.delivery_id)
            continue
        changed[o.claim.delivery_id] = conn.execute(
            _outcome_statement(tuple(sorted(o.values))),
            {
                "delivery_id": o.claim.delivery_id,
                "attempt": o.claim.attempt,
                "claimed_at": o.claim.claimed_at,
                **{f"new_{column}": value for column, value in o.values.items()},
            },
        ).rowcount
    for (claimed_at, attempt), ids in delivered.items():
        params = {"ids": ids, "claimed_at": claimed_at, "attempt": attempt, "now": now}
        moved = conn.execute(_DELIVERED, params).rowcount
        if moved == len(ids):
            changed.update(dict.fromkeys(ids, 1))
        else:
            done = set(conn.execute(_DELIVERED_NOW, params).scalars()) if moved else set()
            changed.update({i: int(i in done) for i in ids})
    return [changed[o.claim.delivery_id] for o in outcomes]


def _summarise(conn, moved: list[_Outcome], now: datetime) -> None:
    """Sum up the notifications of the deliveries that moved on: one statement per set of
    notifications with the same figures to add (usually one for a whole batch)."""
    by_notification: dict[int, list[_Outcome]] = {}
    for o in moved:
        by_notification.setdefault(o.claim.notification_id, []).append(o)
    alike: dict[tuple, list[int]] = {}
    for notification_id in sorted(by_notification):
        mine = by_notification[notification_id]
        figures = (
            sum(1 for o in mine if o.result.sent),
            max(o.claim.claimed_at for o in mine),
            next((o.result.error for o in mine if o.result.error), None),
        )
        alike.setdefault(figures, []).append(notification_id)
    for (attempts, attempted_at, last_error), ids in alike.items():
        conn.execute(
            _SUMMARISE,
            {
                "notification_ids": ids,
                "attempts": attempts,
                "attempted_at": attempted_at,
                "last_error": last_error,
                "now": now,
            },
        )


def _log_outcome(o: _Outcome, changed: bool) -> None:
    msg_id, number = o.claim.msg_id, o.claim.attempt + 1
    if not changed:
        log.warning("notification %s attempt %d finished after its lease", msg_id, number)
    elif o.kind == "delivered":
        log.info(
            "notification %s delivered (attempt %d, %d ms)", msg_id, number, o.result.duration_ms
        )
    elif o.kind == "retrying":
        log.info(
            "notification %s attempt %d failed (%s); retry in %gs",
            msg_id,
            number,
            o.result.error,
            o.retry_in,
        )
    elif not o.result.sent:
        log.warning("notification %s failed: %s", msg_id, o.result.error)
    else:
        log.warning("notification %s failed after %d attempts: %s", msg_id, number, o.result.error)


def send(
    target: Target, msg_id: str, payload: dict, secrets: list[str], *, timeout: float
) -> AttemptResult:
    """POST the payload, signed with every secret, to the checked target's address, and say
    what happened. Never raises."""
    body = notification_body(payload)
    started = time.perf_counter()
    try:
        headers = signed_headers(msg_id, body, secrets, datetime.now(UTC))
    except Exception as exc:  # a corrupt secret must not crash the worker loop
        return AttemptResult(False, None, f"cannot sign: {type(exc).__name__}", 0)
    status_code = None
    response_headers: dict | None = None
    response_body: str | None = None
    try:
        session = _http_session()
        request = requests.Request("POST", target.url, data=body.encode(), headers=headers)
        prepared = pin(session.prepare_request(request), target)
        with session.send(
            prepared, timeout=timeout, allow_redirects=False, stream=True
        ) as response:
            status_code = response.status_code
            response_headers = _bounded_headers(response.headers)
            if 200 <= status_code < 300:
                error = None
                response_body = _drain(response)
            elif 300 <= status_code < 400:
                error = f"HTTP {status_code}: redirects are not followed"
            else:
                error = f"HTTP {status_code}"
                response_body = _read_body(response)
                snippet = " ".join(response_body.split())[:200]
                if snippet:
                    error += f": {snippet}"
    except requests.Timeout:
        error = f"timed out after {timeout:g}s"
    except requests.ConnectionError as exc:
        error = _connection_error(exc)
    except requests.RequestException as exc:
        error = f"request failed: {type(exc).__name__}: {exc}"
    duration_ms = int((time.perf_counter() - started) * 1000)
    return AttemptResult(
        error is None,
        status_code,
        error[:500] if error else None,
        duration_ms,
        request_headers=headers,
        request_body=body[:REQUEST_BODY_LIMIT],
        response_headers=response_headers,
        response_body=response_body,
    )


def _bounded_headers(headers) -> dict[str, str]:
    """The answer's headers as the delivery log keeps them: the first few, each value cut short."""
    kept: dict[str, str] = {}
    for name, value in headers.items():
        if len(kept) >= RESPONSE_HEADERS_LIMIT:
            break
        kept[name[:100]] = value[:500]
    return kept


def _http_session() -> requests.Session:
    """This thread's HTTP client, which keeps connections to client apps open between attempts.

    A new connection per notification costs a TCP and, for a real client app, a TLS handshake:
    more CPU than the rest of a delivery. The session keeps no cookies, so nothing one client
    app sets is ever sent to another. Its transport connects only to checked addresses
    (`PinnedAdapter`), never to a name resolved again.
    """
    session = getattr(_thread_http, "session", None)
    if session is None:
        session = requests.Session()
        session.trust_env = False  # no proxy from the environment: it would resolve the name
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        adapter = PinnedAdapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        _thread_http.session = session
    return session


def _drain(response: requests.Response) -> str:
    """Read a short answer to its end, so its connection can carry the next attempt; its start
    (RESPONSE_BODY_LIMIT) for the delivery log.

    Never raises: the 2xx already counts as delivered, whatever happens to the rest of the body.
    """
    read = 0
    kept = b""
    try:
        for chunk in response.iter_content(DRAIN_CHUNK):
            if len(kept) < RESPONSE_BODY_LIMIT:
                kept += chunk[: RESPONSE_BODY_LIMIT - len(kept)]
            read += len(chunk)
            if read > DRAIN_LIMIT:
                break  # a long answer: closing the connection is cheaper than reading it
    except Exception:
        pass  # the connection is closed with the response
    return kept.decode("utf-8", "replace")


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


def lock_notifications(notification_ids: Iterable[int]) -> list[int]:
    """Lock these notifications in id order (before any of their deliveries); their ids."""
    ids = sorted(set(notification_ids))
    if ids:
        db.session.execute(_LOCK_NOTIFICATIONS, {"ids": ids})
    return ids


def resummarise(notification_ids: Iterable[int]) -> None:
    """Sum these notifications up again after their deliveries were moved on outside a delivery
    cycle (an endpoint disabled or deleted, a redelivery), in one statement; in the caller's
    transaction."""
    ids = lock_notifications(notification_ids)
    if ids:
        db.session.execute(_RESUMMARISE, {"notification_ids": ids, "now": utcnow()})


def _read_body(response: requests.Response) -> str:
    """The start of an error answer (RESPONSE_BODY_LIMIT); never raises."""
    try:
        raw = response.raw.read(RESPONSE_BODY_LIMIT, decode_content=True) or b""
    except Exception:
        return ""
    return raw.decode("utf-8", "replace")


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
