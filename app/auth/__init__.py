"""API-key authentication for the JSON API (client apps)."""

from app.auth.api_keys import authenticate, current_merchant_id

__all__ = ["authenticate", "current_merchant_id"]
