"""Rate limits on /api/v1: per API key (merchant + key id), reads and writes apart, per second;
requests without a valid key per client IP. Counted on Flask-Limiter's storage (Redis), so
every process of every host counts in the same window.

Flask-Limiter's own request hook runs before the API knows the caller (its key is looked up by
the blueprint's hook, after the app's) and counts in process memory while Redis is down; the
API's limits are checked right after authentication instead, and fail open
(app/common/ratelimits.py). Every answer that was counted carries X-RateLimit-Limit,
X-RateLimit-Remaining and X-RateLimit-Reset (unix seconds); a 429 also Retry-After.
"""

from __future__ import annotations

from flask import current_app, g, request
from flask.wrappers import Response

from app.accounts.api_keys import KeyLimits
from app.common.ratelimits import Outage, Quota, count_in_window
from app.errors import PayBridgeError
from app.extensions import limiter
from app.metrics import RATE_LIMITED

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OUTAGE_KEY = "paybridge_api_limit_outage"


def _outage() -> Outage:
    """The app's view of its limits' storage (one per app: each app counts on its own)."""
    extensions = current_app.extensions
    outage = extensions.get(OUTAGE_KEY)
    if outage is None:
        outage = extensions.setdefault(OUTAGE_KEY, Outage("api"))
    return outage


def check_key(merchant_id: int, key_id: int, limits: KeyLimits) -> None:
    """Count this request against its key's read or write limit; 429 when over it."""
    config = current_app.config
    if request.method in READ_METHODS:
        kind, limit = "r", limits.read or config["API_RATE_LIMIT_READ_PER_SECOND"]
    else:
        kind, limit = "w", limits.write or config["API_RATE_LIMIT_WRITE_PER_SECOND"]
    _check(f"k:{merchant_id}:{key_id}:{kind}", limit, "per API key")


def check_anonymous() -> None:
    """Count a request without a valid API key against its client IP's limit."""
    limit = current_app.config["API_RATE_LIMIT_ANONYMOUS_PER_SECOND"]
    _check(f"ip:{request.remote_addr or '-'}", limit, "per client address without an API key")


def _check(identity: str, limit: int, scope: str) -> None:
    outage = _outage()
    if not limiter.enabled or outage.skip():
        if limiter.enabled:
            outage.passed_unchecked()
        return
    try:
        quota = count_in_window(limiter.storage, identity, limit)
    except Exception as error:  # Redis down: fail open (the limits protect capacity only)
        outage.failed(error)
        outage.passed_unchecked()
        return
    outage.answered()
    g.api_quota = quota
    if quota.exceeded:
        RATE_LIMITED.labels("api").inc()
        raise PayBridgeError(
            "RATE_LIMITED",
            f"Too many requests: at most {limit} per second {scope}; retry after the "
            "Retry-After seconds.",
            headers={"Retry-After": str(quota.retry_after())},
        )


def add_headers(response: Response) -> Response:
    """The rate-limit headers, on every answer whose request was counted."""
    quota: Quota | None = g.get("api_quota")
    if quota is not None:
        headers = response.headers
        headers["X-RateLimit-Limit"] = str(quota.limit)
        headers["X-RateLimit-Remaining"] = str(quota.remaining)
        headers["X-RateLimit-Reset"] = str(quota.reset)
    return response
