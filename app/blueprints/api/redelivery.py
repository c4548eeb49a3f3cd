"""API v1: sending events again — one event (to every endpoint that receives it, or to one), or
every failed delivery of an endpoint in a time window. The key's mode only; the same service
(app/notifications/redelivery.py) as the dashboard and the CLI."""

from __future__ import annotations

from flask import jsonify
from flask.views import MethodView
from marshmallow import Schema, fields

from app.blueprints.api import bp
from app.blueprints.api.auth import current_livemode, current_merchant_id
from app.blueprints.api.routes import SECURITY, _errors
from app.blueprints.api.schemas import Always, AnswerSchema, CreatedWindowSchema, UtcDateTime
from app.extensions import db
from app.models import iso
from app.models.base import naive_utc
from app.notifications import endpoints, events, redelivery


class EventRedeliverSchema(Schema):
    """POST /api/v1/events/{id}/redeliver: the body may be empty."""

    BODY_OPTIONAL = True

    endpoint = fields.String(
        metadata={
            "description": "Only to this endpoint (we_…); default: every enabled endpoint that "
            "receives the event's type now.",
            "example": "we_4fK2Lx0QpZr7Vb3nM1tYc8Hq",
        }
    )


class EndpointRedeliverSchema(CreatedWindowSchema):
    """POST /api/v1/notification_endpoints/{id}/redeliver: the window (either end open)."""

    BODY_OPTIONAL = True

    created_gte = UtcDateTime(
        metadata={"description": "Events created at or after this (ISO 8601, UTC if no offset)."}
    )
    created_lte = UtcDateTime(
        metadata={"description": "Events created at or before this (ISO 8601, UTC if no offset)."}
    )


class RedeliverySchema(AnswerSchema):
    """What was queued: the pump sends each with its event's body and webhook-id."""

    object = Always("redelivery")
    event = fields.String(allow_none=True, metadata={"description": "The event (msg_…)."})
    endpoint = fields.String(allow_none=True, metadata={"description": "The endpoint (we_…)."})
    endpoints = fields.List(fields.String(), metadata={"description": "Endpoints it goes to."})
    created_gte = fields.String(allow_none=True)
    created_lte = fields.String(allow_none=True)
    queued = fields.Integer(
        metadata={
            "description": "Deliveries queued. 0 when none of the window's is failed any more "
            "(a repeated request queues nothing twice)."
        }
    )


@bp.route("/events/<string:event_id>/redeliver")
class RedeliverEvent(MethodView):
    @bp.doc(security=SECURITY)
    @bp.arguments(EventRedeliverSchema, error_status_code=400)
    @bp.response(202, RedeliverySchema, description="Queued")
    @_errors(400, 401, 404, 409, 415)
    def post(self, data: dict, event_id: str):
        """Send an event again (same body and `webhook-id`, a fresh retry schedule) to every
        enabled endpoint that receives its type, or to `endpoint`. 409 while a delivery it
        would redo is still pending, or for a disabled endpoint."""
        merchant_id, livemode = current_merchant_id(), current_livemode()
        event = events.get_event(merchant_id, event_id, livemode=livemode)
        endpoint = None
        if "endpoint" in data:
            endpoint = endpoints.get_endpoint(merchant_id, data["endpoint"], livemode)
        notification = redelivery.redeliver(event.id, endpoint)
        sent_to = [
            d.endpoint.public_id
            for d in notification.deliveries
            if d.status == d.STATUS_PENDING and (endpoint is None or d.endpoint_id == endpoint.id)
        ]
        db.session.commit()
        response = jsonify(
            object="redelivery",
            event=notification.public_id,
            endpoint=endpoint.public_id if endpoint else None,
            endpoints=sent_to,
            created_gte=None,
            created_lte=None,
            queued=len(sent_to),
        )
        response.status_code = 202
        return response


@bp.route("/notification_endpoints/<string:endpoint_id>/redeliver")
class RedeliverFailed(MethodView):
    @bp.doc(security=SECURITY)
    @bp.arguments(EndpointRedeliverSchema, error_status_code=400)
    @bp.response(202, RedeliverySchema, description="Queued; `queued` says how many")
    @_errors(400, 401, 404, 409, 415)
    def post(self, data: dict, endpoint_id: str):
        """Send every failed delivery to this endpoint of the events created in the window
        again, in batches; how many. A repeated request queues nothing twice."""
        endpoint = endpoints.get_endpoint(
            current_merchant_id(), endpoint_id, current_livemode(), for_update=True
        )  # locked until the first batch commits: enabled as committed (the claim fails any
        # later batch's deliveries unsent should it be disabled meanwhile)
        window = redelivery.FailedWindow(
            endpoint.id,
            created_gte=_naive(data.get("created_gte")),
            created_lte=_naive(data.get("created_lte")),  # the database keeps naive UTC
        )
        queued = redelivery.redeliver_failed(endpoint, window)
        response = jsonify(
            object="redelivery",
            event=None,
            endpoint=endpoint.public_id,
            endpoints=[endpoint.public_id],
            created_gte=iso(window.created_gte),
            created_lte=iso(window.created_lte),
            queued=queued,
        )
        response.status_code = 202
        return response


def _naive(moment):
    return naive_utc(moment) if moment is not None else None
