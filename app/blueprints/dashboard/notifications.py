"""Sending a notification to the merchant's notify URL again."""

from __future__ import annotations

from flask import abort, url_for
from flask_login import login_required

from app.blueprints.dashboard import bp
from app.blueprints.dashboard.actions import Done, form_page, perform
from app.blueprints.dashboard.forms import ConfirmForm
from app.blueprints.dashboard.shared import act_in_view, own_merchant_id, payment_url
from app.notifications.redelivery import redeliver
from app.reporting import queries


@bp.route("/notifications/<int:notification_id>/resend", methods=["GET", "POST"])
@login_required
def resend_notification(notification_id: int):
    """Confirm, then send a notification to the merchant's notify URL again."""
    notification = queries.notification_in_scope(notification_id, merchant_id=own_merchant_id())
    if notification is None:
        abort(404, "No such notification.")
    payment = notification.payment
    back = payment_url(payment.public_id) if payment else url_for("dashboard.overview")
    if payment is not None:
        act_in_view(payment.livemode, "notification's payment", back)
    form = ConfirmForm()
    if not form.validate_on_submit():
        return form_page(
            "dashboard/confirm_resend.html", notification=notification, form=form, back=back
        )
    msg_id = notification.public_id
    return perform(
        "notification_resend",
        merchant_id=notification.merchant_id,
        target=("notification", msg_id),
        act=lambda: _resend(notification_id, msg_id),
        failure="The notification was not resent",
        back=back,
    )


def _resend(notification_id: int, msg_id: str) -> Done:
    resent = redeliver(notification_id)
    return Done(f"Notification {msg_id} is queued to be sent again.", {"status": resent.status})
