"""Prometheus metrics: defined once here, exported at /metrics.

Under gunicorn each worker process counts on its own; with PROMETHEUS_MULTIPROC_DIR set,
prometheus-client aggregates the processes' files at scrape time.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

HTTP_REQUESTS = Counter(
    "paybridge_http_requests_total",
    "HTTP requests by route and status",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "paybridge_http_request_seconds", "HTTP request latency by route", ["route"]
)
PAYMENT_TRANSITIONS = Counter(
    "paybridge_payment_transitions_total",
    "Payment status changes",
    ["from_status", "to_status", "source"],
)
PSP_CALL_SECONDS = Histogram(
    "paybridge_psp_call_seconds", "Latency of calls to the PSP", ["psp", "operation"]
)
PSP_ERRORS = Counter(
    "paybridge_psp_errors_total", "Failed calls to the PSP", ["psp", "operation", "kind"]
)
WEBHOOK_EVENTS = Counter(
    "paybridge_webhook_events_total", "PSP webhook events by type and outcome", ["type", "outcome"]
)
WEBHOOK_REJECTED = Counter(
    "paybridge_webhook_rejected_total",
    "Webhook deliveries refused before anything was stored (reason: signature, a missing or "
    "wrong signature or a stale timestamp; payload, signed but not an event)",
    ["psp", "reason"],
)
PSP_CIRCUIT_OPEN = Gauge(
    "paybridge_psp_circuit_open",
    "1 while the circuit breaker towards the PSP (one per mode: live, test) is open or "
    "half-open in a process (as of its last call), else 0",
    ["psp", "mode"],
    multiprocess_mode="livemax",
)
PSP_CIRCUIT_OPENED = Counter(
    "paybridge_psp_circuit_opened_total",
    "Times the circuit breaker towards the PSP opened (each failed trial call opens it again)",
    ["psp", "mode"],
)
PAYMENT_CONFLICTS = Counter(
    "paybridge_payment_conflicts_total", "PSP facts that could not be applied", ["kind"]
)
PAYMENT_CONFLICTS_RESOLVED = Counter(
    "paybridge_payment_conflicts_resolved_total",
    "Payment conflicts resolved (how: refunded at the PSP, or marked resolved by hand)",
    ["kind", "how"],
)
NOTIFICATION_DELIVERIES = Counter(
    "paybridge_notification_deliveries_total", "Notification delivery attempts", ["result"]
)
NOTIFICATION_ENDPOINTS_DISABLED = Counter(
    "paybridge_notification_endpoints_disabled_total",
    "Notification endpoints the worker disabled (reason failing: every attempt failed for "
    "NOTIFY_ENDPOINT_DISABLE_AFTER_SECONDS)",
    ["reason"],
)
QUEUE_DEPTH = Gauge(
    "paybridge_queue_depth", "Jobs waiting in each RQ queue", ["queue"], multiprocess_mode="max"
)
NOTIFICATIONS_DUE = Gauge(
    "paybridge_notifications_due",
    "Pending notifications whose attempt is due (the outbox's backlog)",
    multiprocess_mode="max",
)
PAYMENTS_OVERDUE = Gauge(
    "paybridge_payments_overdue",
    "Unfinished payments (CREATED, INITIATED) whose checkout expired longer ago than "
    "reconciliation needs to finish them, by Stripe mode (read from the database at each scrape)",
    ["status", "mode"],
    multiprocess_mode="mostrecent",
)


def render_latest() -> tuple[bytes, str]:
    """The text exposition of every metric, aggregated across processes when configured."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


RATE_LIMITED = Counter(
    "paybridge_rate_limited_total",
    "Requests refused by a rate limit (api: a key's or an IP's /api/v1 limit; psp_create: the "
    "fair share of the PSP's create cap)",
    ["limit"],
)
RATE_LIMIT_UNCHECKED = Counter(
    "paybridge_rate_limit_unchecked_total",
    "Requests let through unchecked because the rate-limit storage (Redis) was unreachable",
    ["limit"],
)
RETENTION_PURGED = Counter(
    "paybridge_retention_purged_total",
    "Rows deleted by retention (app/retention/), by table",
    ["table"],
)
