"""API v1: the merchant's notification endpoints (of the key's mode); the shape of every event
type they can receive is documented by event_docs.py."""

from __future__ import annotations

from flask import current_app, jsonify
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from app.blueprints.api import bp
from app.blueprints.api.auth import current_livemode, current_merchant_id
from app.blueprints.api.routes import SECURITY, _errors
from app.blueprints.api.schemas import Always, AnswerSchema, StrictBoolean
from app.errors import ValidationError
from app.extensions import db
from app.notifications import endpoints, health, test_events
from app.notifications.endpoints import DESCRIPTION_MAX, URL_MAX
from app.notifications.event_types import EVENT_TYPES, SUBSCRIBABLE
from app.serializers.endpoint import endpoint_to_dict
from app.serializers.endpoint_test import endpoint_test_to_dict

EVENTS_DESCRIPTION = (
    'Event types it receives (see the *Event components), or ["*"] for every type, '
    "including types added later."
)


class NotificationEndpointSchema(AnswerSchema):
    """A notification endpoint: where PayBridge POSTs the events it subscribes to."""

    OPTIONAL = ("redelivered", "secret", "deleted")

    id = fields.String(metadata={"example": "we_4fK2Lx0QpZr7Vb3nM1tYc8Hq"})
    object = Always("notification_endpoint")
    livemode = fields.Boolean(metadata={"description": "The mode of the key that made it."})
    url = fields.String()
    description = fields.String(allow_none=True)
    enabled_events = fields.List(fields.String(), metadata={"description": EVENTS_DESCRIPTION})
    status = fields.String(validate=validate.OneOf(["enabled", "disabled"]))
    disabled_reason = fields.String(allow_none=True)
    disabled_at = fields.String(allow_none=True, metadata={"description": "ISO 8601, UTC."})
    failing_since = fields.String(
        allow_none=True,
        metadata={
            "description": "ISO 8601, UTC: since when every attempt to it failed (null: its last "
            "attempt succeeded). Failing for NOTIFY_ENDPOINT_DISABLE_AFTER_SECONDS (3 days by "
            'default) disables it, `disabled_reason` "failing".'
        },
    )
    redelivered = fields.Integer(
        metadata={
            "description": "Only on a PATCH with `redeliver_missed`: how many missed "
            "notifications were queued again to it."
        }
    )
    secret_rotated_at = fields.String(
        allow_none=True,
        metadata={
            "description": "When its secret last rotated: both secrets sign since then, until "
            "`previous_secret_expires_at`."
        },
    )
    previous_secret_expires_at = fields.String(
        allow_none=True,
        metadata={
            "description": "ISO 8601, UTC: until when the previous secret signs too (each "
            "notification then carries both signatures); null when it signs no more, or there "
            "is none."
        },
    )
    created_at = fields.String(metadata={"description": "ISO 8601, UTC."})
    updated_at = fields.String(metadata={"description": "ISO 8601, UTC."})
    secret = fields.String(
        metadata={
            "description": "The signing secret (whsec_…): only in the answer that created the "
            "endpoint or rotated its secret, never again."
        }
    )
    deleted = fields.Boolean(
        validate=validate.Equal(True),
        metadata={"description": "Only in the answer that deleted it: true."},
    )


class NotificationEndpointListSchema(AnswerSchema):
    object = Always("list")
    data = fields.List(fields.Nested(NotificationEndpointSchema))
    has_more = fields.Boolean()


_URL = fields.String(validate=validate.Length(min=1, max=URL_MAX))
_EVENTS = fields.List(
    fields.String(validate=validate.OneOf(SUBSCRIBABLE)),
    validate=validate.Length(min=1),
    metadata={"description": EVENTS_DESCRIPTION},
)
_DESCRIPTION = fields.String(allow_none=True, validate=validate.Length(max=DESCRIPTION_MAX))


class NotificationEndpointCreateSchema(Schema):
    """POST /api/v1/notification_endpoints."""

    url = fields.String(required=True, validate=validate.Length(min=1, max=URL_MAX))
    enabled_events = fields.List(
        fields.String(validate=validate.OneOf(SUBSCRIBABLE)),
        required=True,
        validate=validate.Length(min=1),
        metadata={"description": EVENTS_DESCRIPTION},
    )
    description = _DESCRIPTION


class NotificationEndpointUpdateSchema(Schema):
    """PATCH /api/v1/notification_endpoints/{id}: only the fields sent change."""

    url = _URL
    enabled_events = _EVENTS
    description = _DESCRIPTION
    disabled = StrictBoolean(
        metadata={"description": "true: send it nothing (pending deliveries fail); false: again."}
    )
    redeliver_missed = StrictBoolean(
        metadata={
            "description": "With `disabled: false` on a disabled endpoint: also queue again, to "
            "it only and oldest first, every notification it missed since it began failing (or "
            "was disabled): those whose delivery failed and those sent while it was disabled."
        }
    )


def _allowed_networks():
    return current_app.config["NOTIFY_ALLOWED_NETWORKS"]


def _own(endpoint_id: str, *, for_update: bool = False):
    return endpoints.get_endpoint(
        current_merchant_id(), endpoint_id, current_livemode(), for_update=for_update
    )


@bp.route("/notification_endpoints")
class NotificationEndpoints(MethodView):
    @bp.doc(security=SECURITY)
    @bp.response(200, NotificationEndpointListSchema)
    @_errors(401)
    def get(self):
        """The key's mode's notification endpoints, oldest first (a merchant has a few)."""
        found = endpoints.of_merchant(current_merchant_id(), current_livemode())
        return jsonify(object="list", data=[endpoint_to_dict(e) for e in found], has_more=False)

    @bp.doc(security=SECURITY)
    @bp.arguments(NotificationEndpointCreateSchema, error_status_code=400)
    @bp.response(201, NotificationEndpointSchema, description="Created; `secret` shown once")
    @_errors(400, 401, 415)
    def post(self, data: dict):
        """Add an endpoint (its URL is checked as every delivery checks it: public addresses
        only, unless the operator allowed a network)."""
        endpoint = endpoints.create_endpoint(
            current_merchant_id(),
            current_livemode(),
            url=data["url"],
            event_types=data["enabled_events"],
            description=data.get("description"),
            allowed_networks=_allowed_networks(),
        )
        db.session.commit()
        response = jsonify(endpoint_to_dict(endpoint, secret=endpoint.signing_secret))
        response.status_code = 201
        return response


@bp.route("/notification_endpoints/<string:endpoint_id>")
class NotificationEndpointById(MethodView):
    @bp.doc(security=SECURITY)
    @bp.response(200, NotificationEndpointSchema)
    @_errors(401, 404)
    def get(self, endpoint_id: str):
        """One endpoint (without its secret)."""
        return jsonify(endpoint_to_dict(_own(endpoint_id)))

    @bp.doc(security=SECURITY)
    @bp.arguments(NotificationEndpointUpdateSchema, error_status_code=400)
    @bp.response(200, NotificationEndpointSchema)
    @_errors(400, 401, 404, 415)
    def patch(self, data: dict, endpoint_id: str):
        """Change its URL, description, event types, or disable / enable it (and redeliver
        what it missed)."""
        endpoint = _own(endpoint_id, for_update=True)
        redeliver = data.pop("redeliver_missed", False)
        if redeliver and data.get("disabled") is not False:
            raise ValidationError(
                "redeliver_missed goes with disabled: false (enabling the endpoint).",
                param="redeliver_missed",
            )
        since = health.missed_since(endpoint)
        endpoints.update_endpoint(endpoint, data, allowed_networks=_allowed_networks())
        # It commits the enable first, then each batch it queues.
        redelivered = health.redeliver_missed(endpoint, since) if redeliver else None
        db.session.commit()
        answer = endpoint_to_dict(endpoint)
        if redelivered is not None:
            answer["redelivered"] = redelivered
        return jsonify(answer)

    @bp.doc(security=SECURITY)
    @bp.response(200, NotificationEndpointSchema, description="Deleted: it receives nothing more")
    @_errors(401, 404)
    def delete(self, endpoint_id: str):
        """Delete it: nothing more is sent to it; pending deliveries to it fail."""
        endpoint = _own(endpoint_id, for_update=True)
        endpoints.delete_endpoint(endpoint)
        db.session.commit()
        return jsonify({**endpoint_to_dict(endpoint), "deleted": True})


class RotateSecretSchema(Schema):
    """POST /api/v1/notification_endpoints/{id}/rotate_secret (body optional)."""

    BODY_OPTIONAL = True

    expires_in = fields.Integer(
        validate=validate.Range(min=0, max=endpoints.ROTATION_GRACE_MAX),
        metadata={
            "description": "Seconds the previous secret keeps signing, 0 to 86400 (0: it stops "
            "now); default NOTIFY_SECRET_ROTATION_GRACE_SECONDS (24 hours). As Stripe's "
            "`expires_at`."
        },
    )


@bp.route("/notification_endpoints/<string:endpoint_id>/rotate_secret")
class RotateEndpointSecret(MethodView):
    @bp.doc(security=SECURITY)
    @bp.arguments(RotateSecretSchema, error_status_code=400)
    @bp.response(200, NotificationEndpointSchema, description="The new `secret`, shown once")
    @_errors(400, 401, 404, 415)
    def post(self, data: dict, endpoint_id: str):
        """A new signing secret; the previous one keeps signing too for `expires_in` seconds
        (24 hours by default), so nothing fails while the client app switches."""
        endpoint = _own(endpoint_id, for_update=True)
        grace = current_app.config["NOTIFY_SECRET_ROTATION_GRACE_SECONDS"]
        secret = endpoints.rotate_secret(endpoint, data.get("expires_in", grace))
        db.session.commit()
        return jsonify(endpoint_to_dict(endpoint, secret=secret))


class EndpointTestRequestSchema(Schema):
    """POST /api/v1/notification_endpoints/{id}/test."""

    type = fields.String(
        validate=validate.OneOf(list(EVENT_TYPES)),
        metadata={"description": f"The event type to send (default `{test_events.DEFAULT_TYPE}`)."},
    )


class EndpointTestSentSchema(AnswerSchema):
    headers = fields.Dict(keys=fields.String(), values=fields.String())
    body = fields.String(allow_none=True, metadata={"description": "The JSON body, as sent."})


class EndpointTestAnswerSchema(AnswerSchema):
    status = fields.Integer(metadata={"description": "The answer's HTTP status."})
    headers = fields.Dict(keys=fields.String(), values=fields.String())
    body = fields.String(allow_none=True, metadata={"description": "Its first 4 KiB."})


class EndpointTestSchema(AnswerSchema):
    """A test event sent now to an endpoint: made up (`"test": true` in its body, ids
    `…_test_…`), signed with the endpoint's secret(s); never an event of the Events API."""

    id = fields.String(metadata={"example": "msg_test_4fK2Lx0QpZr7Vb3nM1tYc8Hq"})
    object = Always("notification_endpoint_test")
    endpoint_id = fields.String()
    type = fields.String()
    sent_at = fields.String(metadata={"description": "ISO 8601, UTC."})
    url = fields.String()
    status = fields.String(
        validate=validate.OneOf(["delivered", "failed", "refused"]),
        metadata={
            "description": "delivered: a 2xx within the timeout; failed: another answer, a "
            "timeout or no connection; refused: not sent, the URL may not be called now."
        },
    )
    error = fields.String(allow_none=True)
    duration_ms = fields.Integer()
    request = fields.Nested(
        EndpointTestSentSchema,
        allow_none=True,
        metadata={"description": "What was POSTed (null when refused)."},
    )
    response = fields.Nested(
        EndpointTestAnswerSchema,
        allow_none=True,
        metadata={"description": "What came back (null when no answer came)."},
    )


@bp.route("/notification_endpoints/<string:endpoint_id>/test")
class SendEndpointTest(MethodView):
    @bp.doc(security=SECURITY)
    @bp.arguments(EndpointTestRequestSchema, error_status_code=400)
    @bp.response(200, EndpointTestSchema, description="Sent (or refused); see `status`")
    @_errors(400, 401, 404, 415)
    def post(self, data: dict, endpoint_id: str):
        """Send a made-up event to the endpoint now and answer what was sent and what came
        back. The URL is checked as deliveries check it; at most 10 test events a minute per
        merchant (then 429)."""
        endpoint = _own(endpoint_id)
        test = test_events.send_test_event(endpoint, data.get("type"))
        return jsonify(endpoint_test_to_dict(test, endpoint_id))
