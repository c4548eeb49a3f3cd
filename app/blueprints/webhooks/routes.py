"""POST /webhooks/stripe: verify Stripe's signature over the raw body, then store and apply."""

from __future__ import annotations

import logging

from flask import jsonify, request
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.blueprints.webhooks import bp
from app.errors import PayBridgeError
from app.extensions import csrf, limiter
from app.metrics import WEBHOOK_EVENTS
from app.psp.base import WebhookPayloadError, WebhookVerificationError
from app.psp.factory import get_provider
from app.psp_events.intake import process_event

log = logging.getLogger(__name__)

# The database cannot answer: Stripe must retry later rather than be told "received".
_DATABASE_DOWN = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)


@bp.post("/webhooks/stripe")
@csrf.exempt
@limiter.exempt
def stripe_webhook():
    """Receive one Stripe event: 400 unless Stripe signed it, 503 while the database is down."""
    payload = request.get_data(cache=False)
    try:
        # Verification touches neither the database nor Redis: forged floods stay cheap.
        event = get_provider("stripe").verify_webhook(
            payload, request.headers.get("Stripe-Signature")
        )
    except WebhookVerificationError as exc:
        code = _rejection_code(exc)
        WEBHOOK_EVENTS.labels("unverified", "rejected").inc()
        # The reason only: never the body, the header or a secret.
        log.warning("stripe webhook rejected (%s, %d bytes): %s", code, len(payload), exc)
        raise PayBridgeError(code) from None
    try:
        stored = process_event(event, received_via="webhook", psp="stripe")
        outcome = stored.outcome
    except _DATABASE_DOWN as exc:
        log.error("stripe webhook %s %s not stored, database unavailable: %s", event.id,
                  event.type, type(exc).__name__)  # fmt: skip
        raise PayBridgeError(
            "SERVICE_UNAVAILABLE",
            "The event could not be stored; retry later.",
            headers={"Retry-After": "30"},
        ) from None
    return jsonify(received=True, outcome=outcome)


def _rejection_code(exc: WebhookVerificationError) -> str:
    """A signed body that is not an event is a payload error; anything else is the signature."""
    if isinstance(exc, WebhookPayloadError):
        return "WEBHOOK_PAYLOAD_INVALID"
    return "WEBHOOK_SIGNATURE_INVALID"
