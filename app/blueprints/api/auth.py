"""Who is calling: the API key from `Authorization: Bearer <key>`, or HTTP Basic with the key as
user name (as with Stripe). Every API request but the docs passes through `authenticate`."""

from __future__ import annotations

import base64
import binascii

from flask import g, request

from app.accounts.api_keys import KeyLimits, find_active_key, record_use
from app.errors import PayBridgeError
from app.logging_setup import note_merchant
from app.models import ApiKey

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


def authenticate() -> tuple[ApiKey, KeyLimits]:
    """Identify the calling merchant from the request's API key (with its rate limits), or
    raise a 401."""
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
    found = find_active_key(raw)
    if found is None:
        raise PayBridgeError(
            "INVALID_API_KEY", headers={"WWW-Authenticate": CHALLENGE + ', error="invalid_token"'}
        )
    key, limits = found
    record_use(key)
    g.livemode = key.livemode  # the mode every object it makes or reads is of
    g.api_key_id = key.id
    g.merchant_id = key.merchant_id
    note_merchant(key.merchant_id)
    return key, limits


def current_merchant_id() -> int:
    """The authenticated merchant of this request."""
    merchant_id = g.get("merchant_id")
    if merchant_id is None:
        raise PayBridgeError("AUTHENTICATION_REQUIRED", headers={"WWW-Authenticate": CHALLENGE})
    return merchant_id


def current_livemode() -> bool:
    """The mode of this request's API key: every object it makes or reads is of this mode."""
    livemode = g.get("livemode")
    if livemode is None:
        raise PayBridgeError("AUTHENTICATION_REQUIRED", headers={"WWW-Authenticate": CHALLENGE})
    return livemode
