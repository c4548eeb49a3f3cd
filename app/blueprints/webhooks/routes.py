"""POST /webhooks/stripe: Stripe's signed events, handed to the event intake as they came."""

from __future__ import annotations

from flask import jsonify, request

from app.blueprints.webhooks import bp
from app.extensions import csrf, limiter
from app.psp_events.intake import receive_webhook


@bp.post("/webhooks/stripe")
@csrf.exempt
@limiter.exempt
def stripe_webhook():
    """Receive one Stripe event: 400 unless Stripe signed it, 503 while the database is down."""
    stored = receive_webhook(
        "stripe", request.get_data(cache=False), request.headers.get("Stripe-Signature")
    )
    return jsonify(received=True, outcome=stored.outcome)
