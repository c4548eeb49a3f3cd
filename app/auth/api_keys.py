"""API keys from `Authorization: Bearer <key>` or HTTP Basic with the key as user name.

Keys are looked up by their SHA-256 hash; `last_used_at` is written at most once a minute per
key, so authenticating stays a single indexed read on almost every request.
"""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta

from flask import g, request
from sqlalchemy import bindparam, or_, select, update

from app.errors import PayBridgeError
from app.extensions import db
from app.models import ApiKey, utcnow
from app.models.merchant import hash_api_key

LAST_USED_RESOLUTION = timedelta(seconds=60)
# Built once: every API request runs it.
_KEY_BY_HASH = select(ApiKey).where(ApiKey.key_hash == bindparam("key_hash"))
CHALLENGE = 'Bearer realm="PayBridge API", Basic realm="PayBridge API"'


def raw_key_from_header(header: str | None) -> str | None:
    """The API key carried by an Authorization header value, or None when there is none."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, password = decoded.partition(":")
        # Like Stripe: the key is the user name; accept it as the password for clients that
        # cannot send an empty one.
        return user or password or None
    return None


def authenticate() -> ApiKey:
    """Identify the calling merchant from the request's API key, or raise a 401."""
    header = request.headers.get("Authorization")
    if not header:
        raise PayBridgeError("AUTHENTICATION_REQUIRED", headers={"WWW-Authenticate": CHALLENGE})
    raw = raw_key_from_header(header)
    if raw is None:
        raise PayBridgeError(
            "AUTHENTICATION_REQUIRED",
            "Send the API key as 'Authorization: Bearer <key>' or as the HTTP Basic user name.",
            headers={"WWW-Authenticate": CHALLENGE},
        )
    key = db.session.execute(_KEY_BY_HASH, {"key_hash": hash_api_key(raw)}).scalar_one_or_none()
    if key is None or not key.active:
        raise PayBridgeError(
            "INVALID_API_KEY", headers={"WWW-Authenticate": CHALLENGE + ', error="invalid_token"'}
        )
    _touch(key)
    g.api_key_id = key.id
    g.merchant_id = key.merchant_id
    return key


def _touch(key: ApiKey) -> None:
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


def current_merchant_id() -> int:
    """The authenticated merchant of this request."""
    merchant_id = g.get("merchant_id")
    if merchant_id is None:
        raise PayBridgeError("AUTHENTICATION_REQUIRED", headers={"WWW-Authenticate": CHALLENGE})
    return merchant_id
