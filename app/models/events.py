"""What PayBridge hears from the PSP (webhook events) and tells client apps (notifications)."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import BigId, ExactString, Timestamp, public_id, utcnow
from app.models.endpoint import NotificationDelivery
from app.models.merchant import Merchant
from app.models.payment import Payment


class PspEvent(db.Model):
    """A PSP event, stored once by its id whatever number of times it is delivered."""

    __tablename__ = "psp_events"
    __table_args__ = (
        UniqueConstraint("psp", "event_id"),
        Index("ix_psp_events_received", "received_at"),
        Index("ix_psp_events_outcome_received", "outcome", "received_at"),
        Index("ix_psp_events_session", "psp_session_id"),
    )

    # What processing the event did; the dashboard filters on these.
    OUTCOME_APPLIED = "applied"
    OUTCOME_IGNORED = "ignored"  # stale or out of order: would move the payment backwards
    OUTCOME_UNKNOWN_SESSION = "unknown_session"
    OUTCOME_MISMATCH = "mismatch"
    OUTCOME_CONFLICT = "conflict"
    OUTCOME_UNHANDLED = "unhandled_type"
    # Of the other mode than the payment (refund, subscription) it names: never applied.
    OUTCOME_MODE_MISMATCH = "mode_mismatch"
    # A dispute of no payment PayBridge knows (neither by its payment intent nor its charge).
    OUTCOME_UNKNOWN_DISPUTE = "unknown_dispute"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    psp: Mapped[str] = mapped_column(String(20), default="stripe")
    event_id: Mapped[str] = mapped_column(ExactString(255))
    event_type: Mapped[str] = mapped_column(String(100))
    # The mode the PSP says the event belongs to; one that does not match its payment's is
    # stored and never applied.
    livemode: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    psp_session_id: Mapped[str | None] = mapped_column(ExactString(255))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), index=True)
    payload: Mapped[dict] = mapped_column(db.JSON)
    psp_created_at: Mapped[datetime | None] = mapped_column(Timestamp)
    received_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # webhook | recon (caught up through the PSP's events API)
    received_via: Mapped[str] = mapped_column(String(10), default="webhook")
    outcome: Mapped[str | None] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(String(500))

    payment: Mapped[Payment | None] = relationship()


def notification_body(payload: dict) -> str:
    """The exact body every attempt of a notification POSTs (and signs): its frozen payload,
    compact. The delivery log shows an attempt's request body from here rather than keeping a
    copy per attempt."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


class Notification(db.Model):
    """The event: one per happening per merchant, written with the status change (the outbox).

    It is written `new` (one INSERT in the request's transaction); the worker's pump fans it
    out (`notifications/fanout.py`): each endpoint that receives its type then gets a
    `NotificationDelivery`, which the pump delivers; the status and attempt columns here sum its
    deliveries up (pending while one is; failed when one failed; delivered when all were;
    unrouted when no endpoint received it)."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_status_next_attempt", "status", "next_attempt_at"),
        Index("ix_notifications_payment", "payment_id", "id"),
        Index("ix_notifications_merchant_created", "merchant_id", "created_at"),
        # The Events API: one merchant's mode newest first, by type or not.
        Index(
            "ix_notifications_merchant_mode_created", "merchant_id", "livemode", "created_at", "id"
        ),
        # An operator's delivery log across merchants (0025).
        Index("ix_notifications_livemode_created", "livemode", "created_at", "id"),
        Index(
            "ix_notifications_merchant_mode_type_created",
            "merchant_id",
            "livemode",
            "event_type",
            "created_at",
            "id",
        ),
    )

    STATUS_NEW = "new"  # not fanned out to endpoints yet (next_attempt_at NULL)
    STATUS_PENDING = "pending"
    STATUS_DELIVERED = "delivered"
    STATUS_FAILED = "failed"
    STATUS_UNROUTED = "unrouted"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The Standard Webhooks `webhook-id`: stays the same across retries so clients dedupe.
    public_id: Mapped[str] = mapped_column(
        ExactString(40), unique=True, default=lambda: public_id("msg_")
    )
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    # Its payment's mode: the Events API shows an API key its own mode's events only.
    livemode: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    event_type: Mapped[str] = mapped_column(String(50))
    status_version: Mapped[int | None] = mapped_column(Integer)
    # The body is frozen when the status changes, so a retry sends exactly the same bytes.
    payload: Mapped[dict] = mapped_column(db.JSON)
    # New until the pump fans it out (`fanout.py`), as the request path writes it.
    status: Mapped[str] = mapped_column(String(10), default=STATUS_NEW)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    # The earliest of its pending deliveries' (None when none is pending).
    next_attempt_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_attempt_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)

    merchant: Mapped[Merchant] = relationship()
    payment: Mapped[Payment | None] = relationship()
    attempts: Mapped[list[NotificationAttempt]] = relationship(
        back_populates="notification", order_by="NotificationAttempt.id"
    )
    deliveries: Mapped[list[NotificationDelivery]] = relationship(
        order_by="NotificationDelivery.id", back_populates="notification"
    )


# Long enough for any notification body PayBridge sends (MySQL's TEXT holds 64 KiB bytes).
LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


class NotificationAttempt(db.Model):
    """One POST of a delivery: what was sent and what came back (bounded), for the delivery log."""

    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), index=True)
    # NULL only on attempts made before endpoints (migration 0022 links those it can).
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("notification_deliveries.id"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    url: Mapped[str | None] = mapped_column(String(2000))
    request_headers: Mapped[dict | None] = mapped_column(db.JSON)
    # Only attempts recorded by earlier releases keep it: the body is the notification's
    # (`sent_body`), the same bytes every attempt, not worth a copy per attempt.
    request_body: Mapped[str | None] = mapped_column(LongText)
    response_headers: Mapped[dict | None] = mapped_column(db.JSON)
    response_body: Mapped[str | None] = mapped_column(Text)

    notification: Mapped[Notification] = relationship(back_populates="attempts")

    @property
    def sent_body(self) -> str | None:
        """The request body this attempt POSTed (None when nothing was sent)."""
        if self.request_body is not None or self.request_headers is None:
            return self.request_body
        return notification_body(self.notification.payload)


class ReconciliationRun(db.Model):
    __tablename__ = "reconciliation_runs"
    __table_args__ = (
        Index("ix_reconciliation_runs_started", "started_at"),
        # The next run's resume point is the highest value: read from the index's end.
        Index("ix_reconciliation_runs_sessions_until", "sessions_compared_until"),
    )

    STATUS_RUNNING = "running"
    STATUS_SUCCEEDED = "succeeded"
    STATUS_FAILED = "failed"
    STATUS_SKIPPED = "skipped"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    status: Mapped[str] = mapped_column(String(10), default=STATUS_RUNNING)
    trigger: Mapped[str] = mapped_column(String(20), default="schedule")  # schedule|cli|dashboard
    dry_run: Mapped[bool] = mapped_column(default=False)
    checked: Mapped[int] = mapped_column(Integer, default=0)
    corrected: Mapped[int] = mapped_column(Integer, default=0)
    still_open: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    # [{"payment": "pay_…", "from": "INITIATED", "to": "SUCCESS", "why": "…"}, …]
    details: Mapped[list | None] = mapped_column(db.JSON)
    error_text: Mapped[str | None] = mapped_column(Text)
    # The wide pass's watermark, as far as this (real) run took it: every PSP session created
    # before it has been compared. Written after each chunk it completes; NULL while it
    # completed none (and always on a dry run).
    sessions_compared_until: Mapped[datetime | None] = mapped_column(Timestamp)
