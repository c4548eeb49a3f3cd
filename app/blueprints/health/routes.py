"""Operator endpoints: liveness, readiness, Prometheus metrics (behind METRICS_TOKEN when it is
set, as production requires); and `/`, which is the dashboard."""

from __future__ import annotations

import hmac
import logging

from flask import Response, current_app, jsonify, redirect, request, url_for
from sqlalchemy import text

from app.blueprints.api.auth import raw_key_from_header
from app.blueprints.health import bp
from app.errors import PayBridgeError
from app.extensions import csrf, db, get_redis, limiter
from app.metrics import NOTIFICATIONS_DUE, QUEUE_DEPTH, render_latest
from app.notifications.delivery import count_due
from app.tasks import QUEUE_NAMES, get_queue

log = logging.getLogger(__name__)


@bp.get("/")
def index():
    """PayBridge has no public home page (the demo shop is a separate app): the dashboard."""
    return redirect(url_for("dashboard.overview"))


@bp.get("/healthz")
@limiter.exempt
def healthz():
    """The process is up (no dependency checked: that is /readyz)."""
    return jsonify(status="ok")


@bp.get("/readyz")
@limiter.exempt
def readyz():
    """Database and Redis reachable; 503 naming what is down."""
    checks = {"database": _check_database(), "redis": _check_redis()}
    down = [name for name, ok in checks.items() if not ok]
    body = {"status": "ok" if not down else "unavailable", "checks": checks, "down": down}
    return jsonify(body), (503 if down else 200)


@bp.get("/metrics")
@limiter.exempt
def metrics():
    """Prometheus text format; queue depths and the outbox's backlog are read at scrape time."""
    _require_metrics_token()
    try:
        for name in QUEUE_NAMES:
            QUEUE_DEPTH.labels(name).set(len(get_queue(name)))
    except Exception:  # a scrape must still answer when Redis is down
        log.warning("queue depths unavailable: Redis unreachable")
    try:
        NOTIFICATIONS_DUE.set(count_due())
    except Exception:
        db.session.rollback()
        log.warning("notification backlog unavailable: database unreachable")
    payload, content_type = render_latest()
    return Response(payload, content_type=content_type)


def _require_metrics_token() -> None:
    """A scrape sends METRICS_TOKEN as `Authorization: Bearer` (or the Basic user name)."""
    token = current_app.config["METRICS_TOKEN"]
    if not token:
        return  # the demo and the suite: production refuses to start without a token
    sent = raw_key_from_header(request.headers.get("Authorization")) or ""
    if not hmac.compare_digest(sent.encode(), token.encode()):
        raise PayBridgeError(
            "AUTHENTICATION_REQUIRED",
            "Send the metrics token: Authorization: Bearer <METRICS_TOKEN>.",
            headers={"WWW-Authenticate": 'Bearer realm="PayBridge metrics"'},
        )


def _check_database() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except Exception:
        log.warning("readiness: database unreachable")
        db.session.rollback()
        return False


def _check_redis() -> bool:
    try:
        return bool(get_redis(current_app).ping())
    except Exception:
        log.warning("readiness: Redis unreachable")
        return False


csrf.exempt(bp)
