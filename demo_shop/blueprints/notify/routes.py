"""POST /notify: the URL registered at PayBridge as this merchant's notify URL."""

from __future__ import annotations

from flask import current_app, jsonify, request

from demo_shop import notifications
from demo_shop.blueprints.notify import bp
from demo_shop.config import signing_secrets
from demo_shop.extensions import csrf, db


@bp.post("/notify")
@csrf.exempt  # PayBridge signs its requests; it has no form to take a CSRF token from
def notify():
    """A notification from PayBridge: verify its signature, apply it once, answer 2xx."""
    body = request.get_data(cache=False)  # the raw bytes: the signature covers exactly these
    secrets = signing_secrets(current_app.config["PAYBRIDGE_SIGNING_SECRET"])
    try:
        message = notifications.verify(body, request.headers, secrets)
    except notifications.NotificationRejected as refused:
        current_app.logger.warning("notification refused: %s", refused.message)
        error = {"code": refused.code, "message": f"Notification refused: {refused.message}."}
        return jsonify(error=error), refused.http_status
    outcome = notifications.handle(request.headers["webhook-id"], message)
    db.session.commit()
    return jsonify(received=True, outcome=outcome)
