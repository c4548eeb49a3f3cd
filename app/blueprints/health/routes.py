"""Operator endpoints: liveness, readiness (app/blueprints/health/readiness.py), Prometheus
metrics (behind METRICS_TOKEN when it is set, as production requires); and `/`, which is the
dashboard."""

from __future__ import annotations

from flask import Response, current_app, jsonify, redirect, request, url_for

from app.blueprints.health import bp
from app.blueprints.health.readiness import dependencies, readiness
from app.errors import PayBridgeError
from app.extensions import csrf, limiter
from app.runtime.scrape import scrape, token_accepted


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
    """Each dependency, whether it answers, and what its loss degrades; 503 only when a
    critical one (the database) is down."""
    body, status = readiness(dependencies(current_app))
    return jsonify(body), status


@bp.get("/metrics")
@limiter.exempt
def metrics():
    """Prometheus text format; queue depths, the outbox's backlog and the overdue payments are
    read at scrape time (app/runtime/scrape.py)."""
    token = current_app.config["METRICS_TOKEN"]
    if not token_accepted(token, request.headers.get("Authorization")):
        raise PayBridgeError(
            "AUTHENTICATION_REQUIRED",
            "Send the metrics token: Authorization: Bearer <METRICS_TOKEN>.",
            headers={"WWW-Authenticate": 'Bearer realm="PayBridge metrics"'},
        )
    payload, content_type = scrape(current_app)
    return Response(payload, content_type=content_type)


csrf.exempt(bp)
