"""Notifications reach the merchant's notify_url signed, and are retried, failed or delivered."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import update
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.extensions import db
from app.models import (
    Notification,
    NotificationAttempt,
    NotificationEndpoint,
    PaymentStatus,
    utcnow,
)
from app.models.merchant import new_signing_secret
from tests.notifications.conftest import attempted, status_is
from tests.support.factories import add_endpoint, endpoints_of
from tests.support.rows import get_row, get_rows


def deliveries_counted(result: str) -> float:
    value = REGISTRY.get_sample_value("paybridge_notification_deliveries_total", {"result": result})
    return value or 0.0


def test_final_status_is_delivered_signed_with_the_frozen_payload(
    app, make_merchant, receiver, finish_payment, worker
):
    delivered_before = deliveries_counted("delivered")
    merchant, _ = make_merchant(notify_url=receiver.url)
    payment_id, notification_id = finish_payment(merchant.id)
    # Written new (the request path's one INSERT); fanned out by the pump, due at once.
    assert get_row(app, Notification, notification_id).status == "new"
    assert worker.fan_out() >= 1
    stored = get_row(app, Notification, notification_id)
    assert stored.status == "pending" and stored.next_attempt_at <= utcnow()

    worker.run_until(status_is(app, notification_id, "delivered"), what="delivery")

    [request] = receiver.wait_for(1)
    body = Webhook(merchant.signing_secret).verify(request.body, request.headers)
    assert body == stored.payload
    assert body["type"] == "payment.succeeded"
    assert body["data"]["status"] == "SUCCESS"
    assert body["data"]["status_version"] == 3
    assert request.headers["webhook-id"] == stored.public_id
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["webhook-signature"].startswith("v1,")

    n = get_row(app, Notification, notification_id)
    assert (n.status, n.attempt_count, n.last_error) == ("delivered", 1, None)
    assert n.delivered_at is not None and n.next_attempt_at is None
    [attempt] = get_rows(app, NotificationAttempt, notification_id=notification_id)
    assert attempt.status_code == 200 and attempt.error is None
    assert deliveries_counted("delivered") == delivered_before + 1


def test_failed_payment_is_notified_as_payment_failed(
    app, make_merchant, receiver, finish_payment, worker
):
    merchant, _ = make_merchant(notify_url=receiver.url)
    _, notification_id = finish_payment(merchant.id, PaymentStatus.FAILED)
    worker.run_until(status_is(app, notification_id, "delivered"), what="delivery")
    [request] = receiver.requests
    body = Webhook(merchant.signing_secret).verify(request.body, request.headers)
    assert body["type"] == "payment.failed" and body["data"]["status"] == "FAILED"


def test_while_rotating_both_secrets_verify_until_the_previous_one_expires(
    app, make_merchant, receiver, finish_payment, worker
):
    merchant, _ = make_merchant(notify_url=receiver.url)
    old_secret = merchant.signing_secret
    with app.app_context():
        [endpoint] = endpoints_of(merchant.id, livemode=False)
        new_secret = endpoint.rotate_signing_secret(timedelta(hours=24))
        endpoint_id = endpoint.id
        db.session.commit()
    _, notification_id = finish_payment(merchant.id)
    worker.run_until(status_is(app, notification_id, "delivered"), what="delivery")

    [request] = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old_secret, new_secret):
        assert Webhook(secret).verify(request.body, request.headers)["id"]
    with pytest.raises(WebhookVerificationError):
        Webhook(new_signing_secret()).verify(request.body, request.headers)
    tampered = request.body.replace(b"SUCCESS", b"FAILED!")
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret).verify(tampered, request.headers)

    # Past its expiry the previous secret signs no more: only the new one verifies.
    with app.app_context():
        db.session.execute(
            update(NotificationEndpoint)
            .where(NotificationEndpoint.id == endpoint_id)
            .values(previous_signing_secret_expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    _, later_id = finish_payment(merchant.id)
    worker.run_until(status_is(app, later_id, "delivered"), what="delivery after expiry")
    later = receiver.requests[-1]
    assert len(later.headers["webhook-signature"].split(" ")) == 1
    assert Webhook(new_secret).verify(later.body, later.headers)["id"]
    with pytest.raises(WebhookVerificationError):
        Webhook(old_secret).verify(later.body, later.headers)


def test_receiver_down_then_up_is_delivered_after_retries(
    app, make_merchant, receiver, finish_payment, worker
):
    receiver.status = 503
    merchant, _ = make_merchant(notify_url=receiver.url)
    _, notification_id = finish_payment(merchant.id)

    worker.run_until(attempted(app, notification_id, 2), what="two failed attempts")
    n = get_row(app, Notification, notification_id)
    assert n.status == "pending" and n.last_error == "HTTP 503"
    assert n.next_attempt_at is not None

    receiver.status = 200
    worker.run_until(status_is(app, notification_id, "delivered"), what="delivery")
    attempts = get_rows(app, NotificationAttempt, notification_id=notification_id)
    assert [a.status_code for a in attempts[:-1]] == [503] * (len(attempts) - 1)
    assert all(a.error == "HTTP 503" and a.duration_ms >= 0 for a in attempts[:-1])
    assert attempts[-1].status_code == 200
    assert receiver.hits == len(attempts) and len(receiver.requests) == 1
    assert get_row(app, Notification, notification_id).attempt_count == len(attempts)


def test_receiver_never_up_fails_after_the_schedule_then_resend_delivers(
    app, make_merchant, receiver, finish_payment, worker, runner
):
    retrying_before, failed_before = deliveries_counted("retrying"), deliveries_counted("failed")
    merchant, _ = make_merchant(notify_url="http://127.0.0.1:9/notify")  # nothing listens
    _, notification_id = finish_payment(merchant.id)
    worker.run_until(status_is(app, notification_id, "failed"), what="failure")
    schedule = app.config["NOTIFY_RETRY_SCHEDULE"]
    assert deliveries_counted("retrying") == retrying_before + len(schedule)
    assert deliveries_counted("failed") == failed_before + 1

    n = get_row(app, Notification, notification_id)
    schedule = app.config["NOTIFY_RETRY_SCHEDULE"]
    assert n.attempt_count == len(schedule) + 1
    assert n.last_error == "connection refused" and n.next_attempt_at is None
    attempts = get_rows(app, NotificationAttempt, notification_id=notification_id)
    assert len(attempts) == len(schedule) + 1
    assert all(a.status_code is None and a.error == "connection refused" for a in attempts)

    listed = runner.invoke(args=["notifications", "list", "--status", "failed"])
    assert listed.exit_code == 0 and n.public_id in listed.output
    assert "connection refused" in listed.output

    with app.app_context():
        for endpoint in endpoints_of(merchant.id):
            endpoint.url = receiver.url
        db.session.commit()
    result = runner.invoke(args=["notifications", "resend", n.public_id])
    assert result.exit_code == 0, result.output
    assert f"Queued {n.public_id}" in result.output
    worker.run_until(status_is(app, notification_id, "delivered"), what="delivery after resend")

    [request] = receiver.requests
    assert request.headers["webhook-id"] == n.public_id  # same id: clients dedupe
    assert Webhook(merchant.signing_secret).verify(request.body, request.headers) == n.payload
    assert (
        len(get_rows(app, NotificationAttempt, notification_id=notification_id))
        == len(schedule) + 2
    )


def test_resend_all_failed_and_refusals(
    app, make_merchant, receiver, finish_payment, worker, runner
):
    merchant, _ = make_merchant(notify_url=None)
    ids = [finish_payment(merchant.id)[1] for _ in range(2)]
    # No endpoint receives them: unrouted once fanned out, never attempted.
    worker.fan_out()
    assert all(get_row(app, Notification, i).status == "unrouted" for i in ids)
    n = get_row(app, Notification, ids[0])
    assert n.attempt_count == 0 and get_rows(app, NotificationAttempt, notification_id=ids[0]) == []
    refused = runner.invoke(args=["notifications", "resend", str(ids[0])])
    assert refused.exit_code == 1 and "No enabled notification endpoint" in refused.output

    with app.app_context():
        add_endpoint(merchant.id, receiver.url, ["payment.succeeded"])
        db.session.commit()
    for notification_id in ids:
        result = runner.invoke(args=["notifications", "resend", str(notification_id)])
        assert result.exit_code == 0, result.output
    # Pending now: resending it again is refused with a clear message.
    again = runner.invoke(args=["notifications", "resend", str(ids[0])])
    assert again.exit_code == 1 and "still being delivered" in again.output
    worker.run_until(lambda: all(status_is(app, i, "delivered")() for i in ids), what="both")
    assert len(receiver.requests) == 2

    missing = runner.invoke(args=["notifications", "resend", "msg_doesnotexist"])
    assert missing.exit_code == 1 and "No notification msg_doesnotexist" in missing.output
    neither = runner.invoke(args=["notifications", "resend"])
    assert neither.exit_code == 2


def test_timeout_is_an_attempt_that_is_retried(
    app, make_merchant, receiver, finish_payment, worker, notify_config
):
    notify_config["NOTIFY_TIMEOUT_SECONDS"] = 0.5
    receiver.delay = 1.5
    merchant, _ = make_merchant(notify_url=receiver.url)
    _, notification_id = finish_payment(merchant.id)
    worker.run_until(
        attempted(app, notification_id),
        what="first attempt",
    )
    [attempt] = get_rows(app, NotificationAttempt, notification_id=notification_id)
    assert attempt.error == "timed out after 0.5s" and attempt.status_code is None
    assert 450 <= attempt.duration_ms < 1400
    assert get_row(app, Notification, notification_id).status == "pending"

    receiver.delay = 0
    worker.run_until(status_is(app, notification_id, "delivered"), what="delivery")
    assert len(receiver.requests) >= 1  # the timed-out request may have been accepted late


def test_redirects_are_not_followed(app, make_merchant, receiver, finish_payment, worker):
    receiver.status = 302
    merchant, _ = make_merchant(notify_url=receiver.url)
    _, notification_id = finish_payment(merchant.id)
    worker.run_until(
        attempted(app, notification_id),
        what="first attempt",
    )
    [attempt] = get_rows(app, NotificationAttempt, notification_id=notification_id)[:1]
    assert attempt.status_code == 302
    assert attempt.error == "HTTP 302: redirects are not followed"


def test_private_notify_url_is_refused_where_no_network_is_allowed(
    app, make_merchant, receiver, finish_payment, worker, notify_config
):
    notify_config["NOTIFY_ALLOWED_NETWORKS"] = []
    merchant, _ = make_merchant(notify_url=receiver.url)  # 127.0.0.1: PayBridge's own network
    _, notification_id = finish_payment(merchant.id)
    worker.run_until(
        attempted(app, notification_id),
        what="first attempt",
    )
    [attempt] = get_rows(app, NotificationAttempt, notification_id=notification_id)[:1]
    assert attempt.error == "URL refused: it resolves to a loopback address (127.0.0.1)"
    assert receiver.hits == 0
