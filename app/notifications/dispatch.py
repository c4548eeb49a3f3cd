"""Putting outbox rows on the queue, only ever after the transaction that wrote them commits.

A job enqueued inside the transaction could run before the commit (and find nothing) or
for a row that is then rolled back. So the session remembers which notifications it wrote
(`after_flush`) and hands them to RQ in `after_commit`. If Redis is down at that moment the row
stays pending with `enqueued_at` NULL, and `sweep_due` enqueues it later: nothing is lost.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from flask import current_app
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import event, update
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import Notification, utcnow

log = logging.getLogger(__name__)

_SESSION_KEY = "paybridge_dispatch_notifications"
# A job in one of these states will still run: enqueuing its id again would only duplicate it.
_WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def job_id_for(notification_id: int, attempt: int) -> str:
    """The RQ job id of one delivery attempt: the same attempt enqueued twice collapses."""
    return f"notification-{notification_id}-{attempt}"


def dispatch_after_commit(
    session: Session, notification: Notification, *, fresh: bool = False
) -> None:
    """Ask for `notification` to be enqueued once the session's transaction commits."""
    pending = session.info.setdefault(_SESSION_KEY, {})
    pending[notification.id] = (notification.attempt_count or 0, fresh)


def enqueue_delivery(
    notification_id: int,
    attempt: int = 0,
    *,
    delay_seconds: float | None = None,
    fresh: bool = False,
) -> bool:
    """Enqueue the delivery job and record `enqueued_at`; False (and a log line) if Redis is down.

    Never raises for a queue problem: the outbox row is the source of truth and the sweeper
    enqueues whatever is due and not queued. `fresh`: the row was inserted just now with
    `enqueued_at` already set (`_before_flush`), so no job of it can exist yet and there is
    nothing to record unless Redis refuses, which clears `enqueued_at` again. That saves every
    webhook a Redis lookup and a database transaction.
    """
    from app.tasks import enqueue, get_redis
    from app.tasks.notifications import deliver_notification

    job_id = job_id_for(notification_id, attempt)
    if not fresh:
        try:
            existing = Job.fetch(job_id, connection=get_redis())
            if existing.get_status(refresh=False) in _WAITING:
                _set_enqueued(notification_id, utcnow())
                return True
            # The job of this attempt already ran (finished, failed, or is the caller itself):
            # a new job needs a new id, or RQ would refuse or overwrite it.
            job_id = f"{job_id}-r{int(time.time() * 1000)}"
        except NoSuchJobError:
            pass
        except RedisError:
            if not current_app.config.get("RQ_INLINE_FALLBACK"):
                log.warning(
                    "Redis unreachable: notification %s stays pending for the sweeper",
                    notification_id,
                )
                return False
    try:
        enqueue(
            deliver_notification,
            notification_id,
            queue="notifications",
            job_id=job_id,
            delay_seconds=delay_seconds,
            # The outbox row is the record of a delivery: the job is deleted once it succeeds
            # (no result or registry entry to write), and a later enqueue may reuse its id.
            result_ttl=0,
        )
    except RedisError:
        log.warning(
            "Redis unreachable: notification %s stays pending for the sweeper", notification_id
        )
        if fresh:
            _set_enqueued(notification_id, None)
        return False
    if not fresh:
        _set_enqueued(notification_id, utcnow())
    return True


def _set_enqueued(notification_id: int, at: datetime | None) -> None:
    # Its own short transaction: this runs after a commit, when the caller's session may not
    # emit SQL any more. A failure here only means the sweeper enqueues it again (and the
    # duplicate collapses or finds nothing to do), or, for a fresh row that could not be
    # queued, that the sweeper takes it as a lost job after NOTIFY_LOST_JOB_SECONDS.
    try:
        with db.engine.begin() as conn:
            conn.execute(
                update(Notification)
                .where(
                    Notification.id == notification_id,
                    Notification.status == Notification.STATUS_PENDING,
                )
                .values(enqueued_at=at)
            )
    except Exception:
        log.warning("could not record enqueued_at of notification %s", notification_id)


def _before_flush(session: Session, flush_context, instances) -> None:
    # A new row is marked queued in its own INSERT: the after-commit hook enqueues it. Should the
    # process die in between, the sweeper's lost-job rule finds it after NOTIFY_LOST_JOB_SECONDS.
    for obj in session.new:
        if (
            isinstance(obj, Notification)
            and obj.status in (None, Notification.STATUS_PENDING)
            and obj.enqueued_at is None
        ):
            obj.enqueued_at = utcnow()


def _after_flush(session: Session, flush_context) -> None:
    for obj in session.new:
        if isinstance(obj, Notification) and obj.status == Notification.STATUS_PENDING:
            dispatch_after_commit(session, obj, fresh=True)


def _after_commit(session: Session) -> None:
    pending = session.info.pop(_SESSION_KEY, None)
    if not pending:
        return
    # Whatever happens here, the caller's commit already succeeded: never raise into it.
    for notification_id, (attempt, fresh) in sorted(pending.items()):
        try:
            enqueue_delivery(notification_id, attempt, fresh=fresh)
        except Exception:
            log.exception("enqueueing notification %s failed; the sweeper will", notification_id)


def _after_soft_rollback(session: Session, previous_transaction) -> None:
    # Only the outermost rollback discards them all. A savepoint's rollback keeps the list: an id
    # whose row was rolled back makes a job that finds nothing to do, while dropping the outer
    # transaction's rows would delay them until the sweeper.
    if previous_transaction.parent is None:
        session.info.pop(_SESSION_KEY, None)


def install_session_hooks() -> None:
    """Listen on Flask-SQLAlchemy's session class (once per process)."""
    target = db.session
    for name, fn in (
        ("before_flush", _before_flush),
        ("after_flush", _after_flush),
        ("after_commit", _after_commit),
        ("after_soft_rollback", _after_soft_rollback),
    ):
        if not event.contains(target, name, fn):
            event.listen(target, name, fn)
