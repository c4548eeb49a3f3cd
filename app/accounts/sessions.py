"""Dashboard sessions, kept server-side (`DashboardSession`): a log-in starts one, each request
resumes it, and a log-out, a password change or a timeout ends it for every copy of the cookie.

The cookie holds a random token; the table keeps only its hash. A session counts while its row
is open, was used within the idle timeout and is younger than the absolute lifetime. The
functions flush; the caller commits.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from app.extensions import db
from app.models import DashboardSession, User, utcnow

# last_seen_at is written at most this often per session (a page view is not worth a write),
# and never less often than a quarter of the idle timeout.
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class Lifetimes:
    """How long a session may sit unused, and how long it may last at all."""

    idle: timedelta
    absolute: timedelta

    @classmethod
    def from_config(cls, config) -> Lifetimes:
        return cls(
            idle=timedelta(minutes=int(config["DASHBOARD_SESSION_IDLE_MINUTES"])),
            absolute=timedelta(hours=int(config["DASHBOARD_SESSION_MAX_HOURS"])),
        )


def start_session(user: User, now: datetime | None = None) -> str:
    """Open a session for `user`; returns the token its cookie carries (shown nowhere else)."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    db.session.add(
        DashboardSession(
            token_hash=DashboardSession.hash_token(token),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
        )
    )
    db.session.flush()
    return token


def resume_session(
    token: str | None, user_id: int, lifetimes: Lifetimes, now: datetime | None = None
) -> User | None:
    """The user of the open session `token` names, if it is `user_id`'s and neither idle nor
    too old (then it is marked used); None otherwise, ending it when it just timed out."""
    if not token:
        return None
    now = now or utcnow()
    row = db.session.scalar(
        select(DashboardSession).where(
            DashboardSession.token_hash == DashboardSession.hash_token(token)
        )
    )
    if row is None or row.ended_at is not None or row.user_id != user_id:
        return None
    if now - row.last_seen_at > lifetimes.idle:
        _end(row, "idle", now)
        return None
    if now - row.created_at > lifetimes.absolute:
        _end(row, "expired", now)
        return None
    if now - row.last_seen_at >= min(TOUCH_EVERY, lifetimes.idle / 4):
        row.last_seen_at = now
        db.session.flush()
    return row.user


def end_session(token: str | None, reason: str = "logout") -> None:
    """End the session `token` names (every copy of its cookie stops working)."""
    if not token:
        return
    db.session.execute(
        update(DashboardSession)
        .where(
            DashboardSession.token_hash == DashboardSession.hash_token(token),
            DashboardSession.ended_at.is_(None),
        )
        .values(ended_at=utcnow(), ended_reason=reason)
    )


def end_user_sessions(user_id: int, reason: str) -> int:
    """End every open session of a user (a password change); how many it ended."""
    result = db.session.execute(
        update(DashboardSession)
        .where(DashboardSession.user_id == user_id, DashboardSession.ended_at.is_(None))
        .values(ended_at=utcnow(), ended_reason=reason)
    )
    return result.rowcount


def _end(row: DashboardSession, reason: str, now: datetime) -> None:
    row.ended_at, row.ended_reason = now, reason
    db.session.flush()
