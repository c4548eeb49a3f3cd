"""API v1 routes: parse → one service call → JSON. Every answer, errors included, is JSON."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request
from flask.views import MethodView
from marshmallow import RAISE

from app.blueprints.api import bp, limits
from app.blueprints.api.auth import authenticate, current_livemode, current_merchant_id
from app.blueprints.api.docs import docs_context
from app.blueprints.api.schemas import (
    DisputeEvidenceSchema,
    DisputeListQuerySchema,
    DisputeListSchema,
    DisputeSchema,
    EventListQuerySchema,
    EventListSchema,
    EventSchema,
    PayBridgeErrorSchema,
    PaymentCreateSchema,
    PaymentDetailSchema,
    PaymentListQuerySchema,
    PaymentListSchema,
    PaymentSchema,
    RefundCreateSchema,
    RefundListQuerySchema,
    RefundListSchema,
    RefundSchema,
    SubscriptionCancelSchema,
    SubscriptionSchema,
)
from app.common.idempotency import REPLAYED_HEADER, CommandResult
from app.disputes import service as disputes
from app.errors import PayBridgeError
from app.models import StatusSource
from app.notifications import events
from app.payments import queries as payments
from app.payments.service import expire_payment, submit_payment
from app.refunds import queries as refunds
from app.refunds.service import submit_refund
from app.serializers.dispute import dispute_to_dict
from app.serializers.event import event_to_dict
from app.serializers.payment import payment_to_dict, payments_to_dicts
from app.serializers.refund import refund_to_dict
from app.serializers.subscription import subscription_to_dict
from app.subscriptions import service as subscriptions

PUBLIC_ENDPOINTS = {"api.docs"}
SECURITY = [{"bearerAuth": []}, {"basicAuth": []}]
IDEMPOTENCY_HEADER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "maxLength": 255},
    "description": "Same key + same body returns the first answer again "
    "(header Idempotent-Replayed: true); same key + another body is 422 IDEMPOTENCY_KEY_REUSED.",
}


def document_security(api) -> None:
    """Declare the API-key schemes, and our error shape as flask-smorest's default "Error"."""
    schemas = api.spec.components.schemas
    if "PayBridgeError" in schemas:
        # flask-smorest's 400/default responses point at its own "Error" shape; every error
        # this API answers has ours.
        schemas["Error"] = {"$ref": "#/components/schemas/PayBridgeError"}
    schemes = api.spec.components.security_schemes
    if "bearerAuth" not in schemes:
        api.spec.components.security_scheme(
            "bearerAuth", {"type": "http", "scheme": "bearer", "description": "API key"}
        )
    if "basicAuth" not in schemes:
        api.spec.components.security_scheme(
            "basicAuth",
            {"type": "http", "scheme": "basic", "description": "API key as the user name"},
        )


@bp.before_request
def require_api_key() -> None:
    """Every API route but the docs page needs a merchant's API key; each request counts
    against its key's rate limit, or its client address's without a valid key."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        limits.check_anonymous()
        return
    try:
        key, key_limits = authenticate()
    except PayBridgeError as error:
        if error.status == 401:
            limits.check_anonymous()  # a 429 instead once the address is over its limit
        raise
    limits.check_key(key.merchant_id, key.id, key_limits)


bp.after_request(limits.add_headers)


RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": {
        "description": "Requests allowed per second",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in this one-second window",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Reset": {
        "description": "When the window ends (Unix seconds)",
        "schema": {"type": "integer"},
    },
    "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}},
}


def _errors(*statuses: int):
    """Document error answers (all in PayBridgeErrorSchema's shape); every route may answer
    429 RATE_LIMITED."""

    def decorate(func):
        for status in statuses:
            func = bp.alt_response(status, schema=PayBridgeErrorSchema, description="Error")(func)
        return bp.alt_response(
            429,
            schema=PayBridgeErrorSchema,
            description="RATE_LIMITED: over the API key's rate limit (docs/api.md)",
            headers=RATE_LIMIT_HEADERS,
        )(func)

    return decorate


@bp.route("/payments")
class Payments(MethodView):
    @bp.doc(security=SECURITY, parameters=[IDEMPOTENCY_HEADER])
    @bp.arguments(PaymentCreateSchema, error_status_code=400)
    @bp.response(201, PaymentSchema, description="Created and registered at the PSP")
    @_errors(401, 403, 409, 415, 422, 503)
    def post(self, data: dict):
        """Create a payment and get its checkout URL (exactly once per Idempotency-Key)."""
        result = submit_payment(
            current_merchant_id(),
            data,
            idempotency_key=request.headers.get("Idempotency-Key"),
            livemode=current_livemode(),
            schema_loaded=True,
        )
        return _command_response(result)

    @bp.doc(security=SECURITY)
    # A misspelt filter (?statuss=SUCCESS) is an error, never a silently unfiltered list.
    @bp.arguments(PaymentListQuerySchema, location="query", error_status_code=400, unknown=RAISE)
    @bp.response(200, PaymentListSchema)
    @_errors(401)
    def get(self, query: dict):
        """List payments, newest first, with filters and cursor pagination."""
        page = payments.list_payments(current_merchant_id(), livemode=current_livemode(), **query)
        return jsonify(
            object="list",
            data=payments_to_dicts(page.payments),
            has_more=page.has_more,
            next_cursor=page.next_cursor,
        )


@bp.route("/payments/<string:payment_id>")
class PaymentById(MethodView):
    @bp.doc(security=SECURITY)
    @bp.response(200, PaymentDetailSchema)
    @_errors(401, 404)
    def get(self, payment_id: str):
        """One payment with its status history."""
        payment = _own_payment(payment_id)
        return jsonify(payment_to_dict(payment, with_history=True))


@bp.route("/payments/<string:payment_id>/expire")
class ExpirePayment(MethodView):
    @bp.doc(security=SECURITY)
    @bp.response(200, PaymentDetailSchema, description="The payment, now FAILED")
    @_errors(401, 404, 409, 503)
    def post(self, payment_id: str):
        """Stop a payment that is not final: expire its PSP session; the payment becomes FAILED."""
        payment = _own_payment(payment_id)
        payment = expire_payment(
            payment.id, source=StatusSource.API, reason="expired by the merchant (API)"
        )
        return jsonify(payment_to_dict(payment, with_history=True))


@bp.route("/subscriptions/<string:subscription_id>")
class SubscriptionById(MethodView):
    @bp.doc(security=SECURITY)
    @bp.response(200, SubscriptionSchema)
    @_errors(401, 404)
    def get(self, subscription_id: str):
        """One subscription with its payments (the first and every renewal)."""
        subscription = _own_subscription(subscription_id)
        return jsonify(subscription_to_dict(subscription, with_payments=True))


@bp.route("/subscriptions/<string:subscription_id>/cancel")
class CancelSubscription(MethodView):
    @bp.doc(security=SECURITY)
    @bp.arguments(SubscriptionCancelSchema, error_status_code=400)
    @bp.response(200, SubscriptionSchema, description="The subscription as the PSP now has it")
    @_errors(401, 404, 415, 422, 502, 503)
    def post(self, data: dict, subscription_id: str):
        """Cancel a subscription at the PSP: now, or at the end of the paid period."""
        subscription = _own_subscription(subscription_id)
        subscription = subscriptions.cancel_subscription(
            subscription.id, at_period_end=data["at_period_end"]
        )
        return jsonify(subscription_to_dict(subscription, with_payments=True))


@bp.route("/payments/<string:payment_id>/refunds")
class PaymentRefunds(MethodView):
    @bp.doc(
        security=SECURITY,
        parameters=[IDEMPOTENCY_HEADER],
        requestBody={
            "required": False,
            "content": {"application/json": {"schema": RefundCreateSchema}},
        },
    )
    @bp.response(201, RefundSchema, description="Submitted to the PSP (pending or succeeded)")
    @bp.alt_response(
        202,
        schema=RefundSchema,
        description="Accepted and reserved, PSP not reachable yet: pending, submitted by a "
        "retry with the same Idempotency-Key or by reconciliation",
    )
    @_errors(400, 401, 404, 409, 415, 422)
    def post(self, payment_id: str):
        """Refund a SUCCESS payment, fully (no amount) or partly (exactly once per key)."""
        result = submit_refund(
            current_merchant_id(),
            payment_id,
            _optional_json_object(),
            idempotency_key=request.headers.get("Idempotency-Key"),
            livemode=current_livemode(),
        )
        return _command_response(result)


@bp.route("/refunds")
class Refunds(MethodView):
    @bp.doc(security=SECURITY)
    @bp.arguments(RefundListQuerySchema, location="query", error_status_code=400, unknown=RAISE)
    @bp.response(200, RefundListSchema)
    @_errors(401)
    def get(self, query: dict):
        """List refunds of the key's mode, newest first, with filters and cursor pagination."""
        page = refunds.list_refunds(current_merchant_id(), livemode=current_livemode(), **query)
        return jsonify(
            object="list",
            data=[refund_to_dict(refund) for refund in page.refunds],
            has_more=page.has_more,
            next_cursor=page.next_cursor,
        )


@bp.route("/refunds/<string:refund_id>")
class RefundById(MethodView):
    @bp.doc(security=SECURITY)
    @bp.response(200, RefundSchema)
    @_errors(401, 404)
    def get(self, refund_id: str):
        """One refund (the shape of the payment's `refunds` and of refund notifications)."""
        refund = refunds.get_refund(current_merchant_id(), refund_id, livemode=current_livemode())
        return jsonify(refund_to_dict(refund))


@bp.route("/disputes")
class Disputes(MethodView):
    @bp.doc(security=SECURITY)
    @bp.arguments(DisputeListQuerySchema, location="query", error_status_code=400, unknown=RAISE)
    @bp.response(200, DisputeListSchema)
    @_errors(401)
    def get(self, query: dict):
        """List disputes of the key's mode, newest first, with cursor pagination."""
        page = disputes.list_disputes(current_merchant_id(), livemode=current_livemode(), **query)
        return jsonify(
            object="list",
            data=[dispute_to_dict(d) for d in page.disputes],
            has_more=page.has_more,
            next_cursor=page.next_cursor,
        )


@bp.route("/disputes/<string:dispute_id>")
class DisputeById(MethodView):
    @bp.doc(security=SECURITY)
    @bp.response(200, DisputeSchema)
    @_errors(401, 404)
    def get(self, dispute_id: str):
        """One dispute."""
        return jsonify(dispute_to_dict(_own_dispute(dispute_id)))


@bp.route("/disputes/<string:dispute_id>/evidence")
class DisputeEvidence(MethodView):
    @bp.doc(security=SECURITY)
    @bp.arguments(DisputeEvidenceSchema, error_status_code=400)
    @bp.response(200, DisputeSchema, description="Submitted: the dispute as the PSP now has it")
    @_errors(401, 404, 409, 415, 422, 502, 503)
    def post(self, data: dict, dispute_id: str):
        """Submit text evidence to the PSP (the same text again answers the dispute as it is)."""
        dispute = disputes.submit_evidence(_own_dispute(dispute_id).id, data["text"])
        return jsonify(dispute_to_dict(dispute))


@bp.route("/disputes/<string:dispute_id>/close")
class CloseDispute(MethodView):
    @bp.doc(security=SECURITY)
    @bp.response(200, DisputeSchema, description="Accepted: the dispute is lost")
    @_errors(401, 404, 409, 422, 502, 503)
    def post(self, dispute_id: str):
        """Accept the dispute at the PSP: not contested, the disputed amount is lost."""
        dispute = disputes.accept_dispute(_own_dispute(dispute_id).id)
        return jsonify(dispute_to_dict(dispute))


@bp.route("/events")
class Events(MethodView):
    @bp.doc(security=SECURITY)
    @bp.arguments(EventListQuerySchema, location="query", error_status_code=400, unknown=RAISE)
    @bp.response(200, EventListSchema)
    @_errors(401)
    def get(self, query: dict):
        """List the notifications of the key's mode as events, newest first, for
        EVENTS_RETENTION_DAYS (30 days by default): what a client that was down missed."""
        page = events.list_events(current_merchant_id(), livemode=current_livemode(), **query)
        return jsonify(
            object="list",
            data=[event_to_dict(event) for event in page.events],
            has_more=page.has_more,
            next_cursor=page.next_cursor,
        )


@bp.route("/events/<string:event_id>")
class EventById(MethodView):
    @bp.doc(security=SECURITY)
    @bp.response(200, EventSchema)
    @_errors(401, 404)
    def get(self, event_id: str):
        """One event (a `msg_…` id, the notification's `webhook-id`) within its retention."""
        event = events.get_event(current_merchant_id(), event_id, livemode=current_livemode())
        return jsonify(event_to_dict(event))


def _own_dispute(public_id: str):
    """The caller's dispute of its key's mode (another mode's is 404)."""
    return disputes.get_dispute(current_merchant_id(), public_id, livemode=current_livemode())


def _own_payment(public_id: str):
    """The caller's payment of its key's mode (another mode's is 404, as on Stripe)."""
    return payments.get_payment(current_merchant_id(), public_id, livemode=current_livemode())


def _own_subscription(public_id: str):
    """The caller's subscription of its key's mode (another mode's is 404)."""
    return subscriptions.get_subscription(
        current_merchant_id(), public_id, livemode=current_livemode()
    )


def _command_response(result: CommandResult):
    """An idempotent command's answer, marked when it is a replay of the first one."""
    response = jsonify(result.body)
    response.status_code = result.status
    if result.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return response


def _optional_json_object() -> dict:
    """The JSON object body, or {} when there is no body at all (a full refund)."""
    if not request.get_data(cache=True).strip():
        return {}
    return bp.ARGUMENTS_PARSER.load_json(request, None)


def docs():
    """A human-readable API reference rendered from the OpenAPI document (no external assets)."""
    return render_template("api/docs.html", **docs_context())


# A plain Flask rule: the page is about the API, not part of it (kept out of the OpenAPI).
Blueprint.add_url_rule(bp, "/docs", "docs", docs)
