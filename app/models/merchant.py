"""Merchants (PayBridge's clients), their API keys and their dashboard users."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, Index, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.models.base import ExactString, Timestamp, utcnow

API_KEY_PREFIX = "pbk_"
# Keys say their mode, as Stripe's do: pbk_live_… makes live payments, pbk_test_… test ones.
API_KEY_MODE_PREFIXES = {False: "pbk_test_", True: "pbk_live_"}
API_KEY_SHOWN_CHARS = 16


def new_signing_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def hash_api_key(raw_key: str) -> str:
    # API keys are 32 random bytes: a fast hash is enough and keeps auth cheap per request.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class Merchant(db.Model):
    __tablename__ = "merchants"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Where its notifications go, and their secrets: its NotificationEndpoints (one per URL and
    # mode; migration 0022 made each merchant's notify_url and secret its first ones).
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # Its own /api/v1 rate limits, requests per second per API key; None: the global default
    # (API_RATE_LIMIT_READ_PER_SECOND, API_RATE_LIMIT_WRITE_PER_SECOND).
    api_read_limit: Mapped[int | None] = mapped_column()
    api_write_limit: Mapped[int | None] = mapped_column()
    # The IANA zone its dashboard's days and times are in (app/common/timezones.py).
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="merchant")

    def __repr__(self) -> str:
        return f"<Merchant {self.id} {self.name!r}>"


class ApiKey(db.Model):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="default")
    prefix: Mapped[str] = mapped_column(String(API_KEY_SHOWN_CHARS))
    key_hash: Mapped[str] = mapped_column(ExactString(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # Stripe's mode: a live key (pbk_live_…) makes live payments, a test key test ones.
    livemode: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    merchant: Mapped[Merchant] = relationship(back_populates="api_keys")

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @staticmethod
    def generate(
        merchant: Merchant, name: str = "default", *, livemode: bool = False
    ) -> tuple[ApiKey, str]:
        """Make a key of one mode; the raw key is returned once and never stored."""
        raw = API_KEY_MODE_PREFIXES[livemode] + secrets.token_urlsafe(32)
        key = ApiKey(
            merchant=merchant,
            name=name,
            prefix=raw[:API_KEY_SHOWN_CHARS],
            key_hash=hash_api_key(raw),
            livemode=livemode,
        )
        return key, raw


class User(UserMixin, db.Model):
    """A dashboard user: belongs to one merchant, or is an operator who sees all of them."""

    __tablename__ = "users"
    __table_args__ = (Index("ix_users_merchant_id", "merchant_id"),)

    ROLE_MERCHANT = "merchant"
    ROLE_OPERATOR = "operator"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default=ROLE_MERCHANT)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(Timestamp)

    merchant: Mapped[Merchant | None] = relationship()

    @property
    def is_operator(self) -> bool:
        return self.role == self.ROLE_OPERATOR

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class DashboardSession(db.Model):
    """One log-in to the dashboard, kept server-side: the session cookie carries only its
    token, and the session counts only while this row says it is open, recently used and not
    too old. Ending the row (log-out, password change, idle or absolute timeout) ends every
    copy of the cookie at once."""

    __tablename__ = "dashboard_sessions"
    __table_args__ = (Index("ix_dashboard_sessions_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # SHA-256 of the cookie's random token: a read of the table logs nobody in.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # logout | password_change | idle | expired
    ended_reason: Mapped[str | None] = mapped_column(String(20))

    user: Mapped[User] = relationship()

    @staticmethod
    def hash_token(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()


class AuditLog(db.Model):
    """Append-only record of what dashboard users did (who, what, when, from where)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_merchant_created", "merchant_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    action: Mapped[str] = mapped_column(String(50))
    target_type: Mapped[str | None] = mapped_column(String(50))
    target_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict | None] = mapped_column(db.JSON)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
