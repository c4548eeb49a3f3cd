"""API keys: made (the raw key is shown once, only its SHA-256 hash is stored), found for a
request, revoked. Looking one up is a single indexed read; `last_used_at` is written at most
once a minute per key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, or_, select, update

from app.errors import NotFoundError, ValidationError
from app.extensions import db
from app.models import ApiKey, Merchant, utcnow
from app.models.merchant import hash_api_key

MAX_KEY_NAME = 100
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """A key's own API rate limits per second (its merchant's); None: the global default."""

    read: int | None = None
    write: int | None = None


# Built once: every API request runs it. The merchant's rate limits come in the same read.
_KEY_BY_HASH = (
    select(ApiKey, Merchant.api_read_limit, Merchant.api_write_limit)
    .join(Merchant, Merchant.id == ApiKey.merchant_id)
    .where(ApiKey.key_hash == bindparam("key_hash"))
)


def find_active_key(raw: str) -> tuple[ApiKey, KeyLimits] | None:
    """The key a client sent and its rate limits, unless it is unknown or revoked."""
    row = db.session.execute(_KEY_BY_HASH, {"key_hash": hash_api_key(raw)}).one_or_none()
    if row is None or not row[0].active:
        return None
    return row[0], KeyLimits(row[1], row[2])


def record_use(key: ApiKey) -> None:
    """Record use, at most once per LAST_USED_RESOLUTION (one cheap conditional UPDATE)."""
    now = utcnow()
    if key.last_used_at is not None and key.last_used_at > now - LAST_USED_RESOLUTION:
        return
    db.session.execute(
        update(ApiKey)
        .where(ApiKey.id == key.id)
        .where(or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - LAST_USED_RESOLUTION))
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    # Its own commit: nothing else is pending yet, and a failing request still counts as use.
    db.session.commit()


def of_merchant(merchant_id: int) -> list[ApiKey]:
    stmt = (
        select(ApiKey)
        .where(ApiKey.merchant_id == merchant_id)
        .order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc(), ApiKey.id.desc())
    )
    return list(db.session.scalars(stmt))


def create_api_key(merchant: Merchant, name: str, *, livemode: bool = False) -> tuple[ApiKey, str]:
    """A new key for the merchant in one mode (pbk_test_… or pbk_live_…); the raw key is
    returned once and never stored."""
    name = (name or "").strip() or "default"
    if len(name) > MAX_KEY_NAME:
        raise ValidationError(f"Key names are at most {MAX_KEY_NAME} characters.", param="name")
    key, raw = ApiKey.generate(merchant, name=name, livemode=livemode)
    db.session.add(key)
    db.session.flush()
    return key, raw


def revoke_api_key(merchant_id: int, key_id: int) -> ApiKey:
    """Revoke one of the merchant's keys (idempotent); another merchant's key is not found."""
    key = db.session.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.merchant_id == merchant_id)
    )
    if key is None:
        raise NotFoundError(message="No such API key.")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        db.session.flush()
    return key
