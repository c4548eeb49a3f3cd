"""Where a merchant's notifications go: its notification endpoints, and one delivery of a
notification (the event) to each endpoint that subscribes to its type."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, false, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import BigId, ExactString, Timestamp, public_id, utcnow
from app.models.merchant import Merchant, new_signing_secret

# An endpoint subscribed to this receives every event type, today's and those added later.
ALL_EVENT_TYPES = "*"


class NotificationEndpoint(db.Model):  # type: ignore[name-defined]  # flask-sqlalchemy: dynamic
    """One URL of a merchant, in one mode, with the event types it receives and its own secret.

    A deleted endpoint keeps its row (its deliveries and attempts stay readable), marked
    `deleted_at`, and is never shown or delivered to again."""

    __tablename__ = "notification_endpoints"
    __table_args__ = (
        Index("ix_notification_endpoints_merchant_mode", "merchant_id", "livemode", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(
        ExactString(40), unique=True, default=lambda: public_id("we_")
    )
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    livemode: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(500))
    # The event types it receives (app/notifications/event_types.py), or ["*"] for all.
    event_types: Mapped[list] = mapped_column(db.JSON)
    signing_secret: Mapped[str] = mapped_column(String(100), default=new_signing_secret)
    # While its secret rotates, notifications are signed with both, until the previous one
    # expires (NOTIFY_SECRET_ROTATION_GRACE_SECONDS after the rotation, or sooner if asked).
    previous_signing_secret: Mapped[str | None] = mapped_column(String(100))
    previous_signing_secret_expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    secret_rotated_at: Mapped[datetime | None] = mapped_column(Timestamp)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    disabled_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # When its current run of failed attempts began (None: its last attempt succeeded). An
    # endpoint failing this long (NOTIFY_ENDPOINT_DISABLE_AFTER_SECONDS) is disabled; the run's
    # start is kept while disabled, as the start of what it missed, and cleared on enabling.
    failing_since: Mapped[datetime | None] = mapped_column(Timestamp)
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)

    merchant: Mapped[Merchant] = relationship()

    def signing_secrets(self, now: datetime | None = None) -> list[str]:
        """The secrets that sign now: the current one, and the previous one until it expires."""
        return signing_secrets(
            self.signing_secret,
            self.previous_signing_secret,
            self.previous_signing_secret_expires_at,
            now or utcnow(),
        )

    def previous_secret_signs_until(self, now: datetime | None = None) -> datetime | None:
        """When the previous secret stops signing; None when it does not sign (any more)."""
        if len(self.signing_secrets(now)) < 2:
            return None
        return self.previous_signing_secret_expires_at

    def receives(self, event_type: str) -> bool:
        return ALL_EVENT_TYPES in self.event_types or event_type in self.event_types

    def rotate_signing_secret(self, grace: timedelta) -> str:
        """Start a rotation: the new secret signs from now on, the old one keeps signing too
        for `grace` (none: it stops now)."""
        now = utcnow()
        self.previous_signing_secret = self.signing_secret
        self.previous_signing_secret_expires_at = now + grace
        self.signing_secret = new_signing_secret()
        self.secret_rotated_at = now
        return self.signing_secret

    def __repr__(self) -> str:
        return f"<NotificationEndpoint {self.public_id} {self.url!r}>"


def signing_secrets(
    current: str, previous: str | None, previous_expires_at: datetime | None, now: datetime
) -> list[str]:
    """The one rule of which secrets sign at `now` (for an endpoint object or the delivery
    claim's plain row): the previous secret only before it expires; one with no expiry never
    signs, so no secret signs forever."""
    if previous and previous_expires_at is not None and now < previous_expires_at:
        return [current, previous]
    return [current]


class NotificationDelivery(db.Model):  # type: ignore[name-defined]  # as above
    """One notification on its way to one endpoint: the queue the worker's pump works on.

    `next_attempt_at` is when it is due, or, while an attempt is in flight, the end of the
    claim's lease (`last_attempt_at` names the claim). `payment_id` is the notification's, kept
    here so a payment's deliveries to one endpoint go out in order without a join."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        Index("ix_notification_deliveries_status_next_attempt", "status", "next_attempt_at"),
        Index("ix_notification_deliveries_endpoint_payment", "endpoint_id", "payment_id", "id"),
        Index("ix_notification_deliveries_notification", "notification_id"),
        # An endpoint's failed deliveries in id order: bulk redelivery counts and walks them.
        Index("ix_notification_deliveries_endpoint_status", "endpoint_id", "status", "id"),
        # Fair delivery: which endpoints have due deliveries, and each one's oldest.
        Index(
            "ix_notification_deliveries_endpoint_due", "endpoint_id", "status", "next_attempt_at"
        ),
    )

    STATUS_PENDING = "pending"
    STATUS_DELIVERED = "delivered"
    STATUS_FAILED = "failed"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("notification_endpoints.id"))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    status: Mapped[str] = mapped_column(String(10), default=STATUS_PENDING)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(Timestamp, default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)

    endpoint: Mapped[NotificationEndpoint] = relationship()
    # Notification lives in events.py, which imports this module: named, not imported.
    notification: Mapped[Notification] = relationship(  # type: ignore[name-defined]  # noqa: F821
        back_populates="deliveries"
    )


class EndpointTestEvent(db.Model):  # type: ignore[name-defined]  # as above
    """One test event a merchant sent to an endpoint (dashboard or API): what was sent and what
    came back (bounded). Never a notification: the Events API and the delivery queue never see
    it. Also what the rate limit on test events counts."""

    __tablename__ = "notification_endpoint_tests"
    __table_args__ = (
        Index("ix_notification_endpoint_tests_merchant_sent", "merchant_id", "sent_at"),
        Index("ix_notification_endpoint_tests_endpoint_sent", "endpoint_id", "sent_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(
        ExactString(40), unique=True, default=lambda: public_id("msg_test_")
    )
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("notification_endpoints.id"))
    event_type: Mapped[str] = mapped_column(String(50))
    sent_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    url: Mapped[str] = mapped_column(String(2000))
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    request_headers: Mapped[dict | None] = mapped_column(db.JSON)
    request_body: Mapped[str | None] = mapped_column(Text)
    response_headers: Mapped[dict | None] = mapped_column(db.JSON)
    response_body: Mapped[str | None] = mapped_column(Text)

    endpoint: Mapped[NotificationEndpoint] = relationship()
