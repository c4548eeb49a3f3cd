"""The one way the dashboard writes its audit log: append a row, never update or delete one."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app.common.tenancy import scoped
from app.extensions import db
from app.models import AuditLog, User

log = logging.getLogger(__name__)

# Every action the dashboard records; the audit page filters on these.
ACTIONS = (
    "login",
    "login_failed",
    "logout",
    "password_change",
    "mode_switch",
    "payment_expire",
    "payment_refund",
    "subscription_cancel",
    "dispute_evidence",
    "dispute_accept",
    "notification_resend",
    "delivery_redeliver",
    "endpoint_redeliver_failed",
    "payment_reconcile",
    "conflict_refund",
    "conflict_resolve",
    "reconciliation_run",
    "api_key_create",
    "api_key_revoke",
    "secret_reveal",
    "secret_rotate",
    "notify_url_change",  # before notification endpoints (0022); kept for the old rows
    "time_zone_change",
    "endpoint_create",
    "endpoint_update",
    "endpoint_disable",
    "endpoint_enable",
    "endpoint_delete",
    "endpoint_auto_disable",  # by the worker (no user): every attempt failed for too long
    "endpoint_test",
)

AUDIT_PAGE_SIZE = 100


class AuditLogIsAppendOnly(RuntimeError):
    """Raised when code tries to change or delete an audit row through the ORM."""


def _refuse_changes(session, flush_context, instances) -> None:
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, AuditLog) and (obj in session.deleted or session.is_modified(obj)):
            raise AuditLogIsAppendOnly(f"audit row {obj.id} cannot be changed or deleted")


def protect_audit_log() -> None:
    """Make every ORM session refuse UPDATE and DELETE of audit rows (idempotent)."""
    if not event.contains(Session, "before_flush", _refuse_changes):
        event.listen(Session, "before_flush", _refuse_changes)


def record(
    action: str,
    *,
    user: User | None,
    merchant_id: int | None,
    ip: str | None,
    user_agent: str | None,
    target_type: str | None = None,
    target_id: str | int | None = None,
    detail: dict | None = None,
) -> AuditLog:
    """Append one audit row to the session; the caller commits it with the action it records."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}: add it to ACTIONS")
    entry = AuditLog(
        user_id=user.id if user is not None else None,
        merchant_id=merchant_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id)[:64] if target_id is not None else None,
        detail=detail or None,
        ip=(ip or "")[:45] or None,
        user_agent=(user_agent or "")[:300] or None,
    )
    db.session.add(entry)
    db.session.flush()
    log.info(
        "audit %s by user %s (merchant %s) on %s %s",
        action,
        entry.user_id,
        merchant_id,
        target_type,
        entry.target_id,
    )
    return entry


def entries(
    *, merchant_id: int | None, action: str | None = None, before_id: int | None = None
) -> list[tuple[AuditLog, str | None]]:
    """Newest first, with the acting user's email; keyset on id."""
    stmt = (
        select(AuditLog, User.email)
        .outerjoin(User, User.id == AuditLog.user_id)
        .order_by(AuditLog.id.desc())
        .limit(AUDIT_PAGE_SIZE + 1)
    )
    stmt = scoped(stmt, AuditLog, merchant_id)
    if action:
        stmt = stmt.where(AuditLog.action == action)
    if before_id:
        stmt = stmt.where(AuditLog.id < before_id)
    return [(row[0], row[1]) for row in db.session.execute(stmt)]


def last_login(user_id: int) -> datetime | None:
    stmt = (
        select(AuditLog.created_at)
        .where(AuditLog.user_id == user_id, AuditLog.action == "login")
        .order_by(AuditLog.id.desc())
        .limit(1)
    )
    return db.session.scalar(stmt)
