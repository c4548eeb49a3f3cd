"""PayBridge's notifications: POST /notify/orders and /notify/refunds, the shop's two
notification endpoints (demo_shop/endpoints.py), each verified with its own secret; and POST
/notify, the one notify URL of a shop connected before endpoints."""

from __future__ import annotations

from flask import abort, current_app, jsonify, request

from demo_shop import notifications
from demo_shop.blueprints.notify import bp
from demo_shop.config import signing_secrets
from demo_shop.endpoints import ENDPOINTS
from demo_shop.extensions import csrf, db


@bp.post("/notify/<string:name>")
@csrf.exempt  # PayBridge signs its requests; it has no form to take a CSRF token from
def notify_endpoint(name: str):
    """A notification to one of the shop's endpoints, signed with that endpoint's secret."""
    endpoint = ENDPOINTS.get(name)
    if endpoint is None:
        abort(404)
    return _receive(current_app.config.get(endpoint.secret_setting), endpoint.receives)


@bp.post("/notify")
@csrf.exempt
def notify():
    """A notification to the merchant's notify URL (a shop connected before endpoints)."""
    return _receive(current_app.config["PAYBRIDGE_SIGNING_SECRET"], lambda _type: True)


def _receive(secret_setting: str | None, expects):
    """Verify the signature, apply the notification once, answer 2xx."""
    body = request.get_data(cache=False)  # the raw bytes: the signature covers exactly these
    secrets = signing_secrets(secret_setting)
    try:
        message = notifications.verify(body, request.headers, secrets)
    except notifications.NotificationRejected as refused:
        current_app.logger.warning("notification refused: %s", refused.message)
        error = {"code": refused.code, "message": f"Notification refused: {refused.message}."}
        return jsonify(error=error), refused.http_status
    if not expects(message["type"]):
        # Applied all the same (it is signed, and news): but the endpoint's types at PayBridge
        # and the shop's list disagree.
        current_app.logger.warning("%s arrived at %s", message["type"], request.path)
    outcome = notifications.handle(request.headers["webhook-id"], message)
    db.session.commit()
    return jsonify(received=True, outcome=outcome)
