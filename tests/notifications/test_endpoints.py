"""Notification endpoints against real receivers: each gets the types it subscribes to, in
order per payment, signed with its own secret; a disabled one gets nothing; each attempt keeps
what was sent and answered."""

from __future__ import annotations

import pytest
from standardwebhooks import Webhook

from app.extensions import db
from app.models import (
    Notification,
    NotificationAttempt,
    NotificationDelivery,
    PaymentStatus,
    StatusSource,
)
from app.notifications import endpoints
from app.notifications.delivery import deliver_due
from app.payments.state import lock_payment, transition
from tests.support.factories import add_endpoint, make_payment
from tests.support.receiver import Receiver
from tests.support.rows import get_row, get_rows


@pytest.fixture
def second_receiver():
    r = Receiver().start()
    yield r
    r.stop()


def _move(app, payment_id: int, *targets: PaymentStatus) -> None:
    """Move the payment through `targets`, one committed transition each (as webhooks do)."""
    for target in targets:
        with app.app_context():
            transition(lock_payment(payment_id), target, source=StatusSource.WEBHOOK)
            db.session.commit()


def _endpoint(app, merchant_id: int, url: str, types: list[str], **kw) -> tuple[int, str]:
    with app.app_context():
        endpoint = add_endpoint(merchant_id, url, types, **kw)
        db.session.commit()
        return endpoint.id, endpoint.signing_secret


def _all_done(app, merchant_id: int):
    def check():
        pending = db.session.scalar(
            db.select(db.func.count())
            .select_from(NotificationDelivery)
            .join(Notification, Notification.id == NotificationDelivery.notification_id)
            .where(
                Notification.merchant_id == merchant_id, NotificationDelivery.status == "pending"
            )
        )
        return pending == 0

    return check


def test_subscriptions_route_each_type_only_where_asked_and_in_order_per_endpoint(
    app, make_merchant, receiver, second_receiver, notify_config, worker
):
    merchant, _ = make_merchant(notify_url=None)
    _, everything_secret = _endpoint(app, merchant.id, receiver.url, ["*"])
    _, finals_secret = _endpoint(
        app, merchant.id, second_receiver.url, ["payment.succeeded", "payment.failed"]
    )
    # Another mode's endpoint and another merchant's get none of it.
    third = Receiver().start()
    try:
        _endpoint(app, merchant.id, third.url, ["*"], livemode=True)
        other, _ = make_merchant(name="Other", notify_url=third.url)

        payment_id = make_payment(app, merchant.id, PaymentStatus.CREATED).id
        _move(app, payment_id, PaymentStatus.INITIATED, PaymentStatus.PENDING)
        _move(app, payment_id, PaymentStatus.SUCCESS)
        worker.run_until(_all_done(app, merchant.id), what="every delivery")

        everything = [
            Webhook(everything_secret).verify(r.body, r.headers) for r in receiver.requests
        ]
        assert [m["type"] for m in everything] == [
            "payment.initiated",
            "payment.pending",
            "payment.succeeded",
        ]
        finals = [
            Webhook(finals_secret).verify(r.body, r.headers) for r in second_receiver.requests
        ]
        assert [m["type"] for m in finals] == ["payment.succeeded"]
        # One event, one webhook-id, whichever endpoint it reaches.
        assert finals[0]["id"] == everything[2]["id"]
        assert second_receiver.requests[0].headers["webhook-id"] == finals[0]["id"]
        assert third.hits == 0
    finally:
        third.stop()

    notification = get_row(app, Notification, public_id=finals[0]["id"])
    assert notification.status == "delivered" and notification.attempt_count == 2
    deliveries = get_rows(app, NotificationDelivery, notification_id=notification.id)
    assert sorted(d.status for d in deliveries) == ["delivered", "delivered"]


def test_a_failing_endpoint_holds_up_only_its_own_deliveries(
    app, make_merchant, receiver, second_receiver, notify_config, worker
):
    """Order per (endpoint, payment): the first event waits for its retries at the failing
    endpoint, and the second waits behind it there; the other endpoint gets both at once."""
    notify_config["NOTIFY_RETRY_SCHEDULE"] = [60]
    merchant, _ = make_merchant(notify_url=None)
    failing_id, failing_secret = _endpoint(app, merchant.id, receiver.url, ["*"])
    _endpoint(app, merchant.id, second_receiver.url, ["*"])
    receiver.status = 500
    receiver.extra_headers = {"X-Why": "down for maintenance"}
    payment_id = make_payment(app, merchant.id, PaymentStatus.CREATED).id
    _move(app, payment_id, PaymentStatus.INITIATED, PaymentStatus.SUCCESS)

    worker.run_until(lambda: len(second_receiver.requests) == 2, what="the healthy endpoint")
    assert [r.json()["type"] for r in second_receiver.requests] == [
        "payment.initiated",
        "payment.succeeded",
    ]
    assert receiver.hits == 1  # the first, refused; the second waits behind it
    with app.app_context():
        waiting = db.session.scalars(
            db.select(NotificationDelivery)
            .where(NotificationDelivery.endpoint_id == failing_id)
            .order_by(NotificationDelivery.id)
        ).all()
        assert [(d.status, d.attempt_count) for d in waiting] == [("pending", 1), ("pending", 0)]
        notifications = [db.session.get(Notification, d.notification_id) for d in waiting]
        assert [n.status for n in notifications] == ["pending", "pending"]

        [attempt] = db.session.scalars(
            db.select(NotificationAttempt).where(NotificationAttempt.delivery_id == waiting[0].id)
        ).all()
        sent_body = attempt.sent_body
    assert attempt.status_code == 500 and attempt.url == receiver.url
    # What was sent, as sent: it verifies with that endpoint's secret.
    assert attempt.request_headers["webhook-id"] == notifications[0].public_id
    sent = Webhook(failing_secret).verify(sent_body, attempt.request_headers)
    assert sent == notifications[0].payload
    assert attempt.response_headers["X-Why"] == "down for maintenance"
    assert attempt.response_body == ""


def test_a_disabled_endpoint_gets_nothing_and_its_pending_deliveries_fail(
    app, make_merchant, receiver, second_receiver, notify_config, worker
):
    merchant, _ = make_merchant(notify_url=None)
    disabled_id, _ = _endpoint(app, merchant.id, receiver.url, ["*"])
    _endpoint(app, merchant.id, second_receiver.url, ["*"])
    payment_id = make_payment(app, merchant.id, PaymentStatus.CREATED).id
    _move(app, payment_id, PaymentStatus.INITIATED)
    worker.fan_out()  # pending for both, not yet sent
    with app.app_context():
        endpoint = db.session.get(endpoints.NotificationEndpoint, disabled_id)
        endpoints.update_endpoint(endpoint, {"disabled": True}, allowed_networks=[])
        db.session.commit()
        stopped = db.session.scalars(
            db.select(NotificationDelivery).where(NotificationDelivery.endpoint_id == disabled_id)
        ).one()
        assert (stopped.status, stopped.last_error) == ("failed", "the endpoint was disabled")
    _move(app, payment_id, PaymentStatus.SUCCESS)  # after disabling: no delivery to it at all
    worker.run_until(_all_done(app, merchant.id), what="every delivery")

    assert receiver.hits == 0
    assert [r.json()["type"] for r in second_receiver.requests] == [
        "payment.initiated",
        "payment.succeeded",
    ]
    with app.app_context():
        assert (
            db.session.scalar(
                db.select(db.func.count())
                .select_from(NotificationDelivery)
                .where(NotificationDelivery.endpoint_id == disabled_id)
            )
            == 1
        )
        first = db.session.get(Notification, stopped.notification_id)
        assert first.status == "failed"  # one of its deliveries failed (resendable)


def test_a_delivery_of_an_endpoint_disabled_after_it_was_queued_fails_unsent_at_the_claim(
    app, make_merchant, receiver, notify_config, worker
):
    """What slipped past the disable (a redelivery racing it) is failed by the claim: never
    POSTed, no attempt row, and the endpoint's clock does not start (nothing was tried)."""
    merchant, _ = make_merchant(notify_url=None)
    endpoint_id, _ = _endpoint(app, merchant.id, receiver.url, ["*"])
    payment_id = make_payment(app, merchant.id, PaymentStatus.CREATED).id
    _move(app, payment_id, PaymentStatus.INITIATED)
    worker.fan_out()  # its delivery is pending, due now
    with app.app_context():  # disabled behind the service's back: the delivery stays pending
        db.session.execute(
            db.update(endpoints.NotificationEndpoint)
            .where(endpoints.NotificationEndpoint.id == endpoint_id)
            .values(enabled=False, disabled_reason="disabled by the merchant")
        )
        db.session.commit()
        [queued] = get_rows(app, NotificationDelivery, endpoint_id=endpoint_id)
        assert queued.status == "pending"

    with app.app_context():
        assert deliver_due() == 1  # one delivery cycle: it was claimed

    [failed] = get_rows(app, NotificationDelivery, endpoint_id=endpoint_id)
    assert (failed.status, failed.last_error) == ("failed", "not sent: the endpoint is disabled")
    assert get_rows(app, NotificationAttempt, delivery_id=failed.id) == []
    assert receiver.hits == 0
    assert get_row(app, endpoints.NotificationEndpoint, endpoint_id).failing_since is None
    assert get_row(app, Notification, failed.notification_id).status == "failed"


def test_disabling_fails_deliveries_made_after_the_request_began_and_resummarises(
    app, make_merchant, receiver, notify_config, worker
):
    """A fan-out that commits after the merchant's request took its snapshot made deliveries
    that snapshot does not see; disabling fails them all the same, and their notifications
    say failed, not pending."""
    merchant, _ = make_merchant(notify_url=None)
    endpoint_id, _ = _endpoint(app, merchant.id, receiver.url, ["*"])
    public_id = get_row(app, endpoints.NotificationEndpoint, endpoint_id).public_id
    payment_id = make_payment(app, merchant.id, PaymentStatus.CREATED).id
    with app.app_context():  # the merchant's request
        assert (
            db.session.scalars(
                db.select(NotificationDelivery).where(
                    NotificationDelivery.endpoint_id == endpoint_id
                )
            ).all()
            == []
        )  # its snapshot begins: nothing pending yet
        # Meanwhile, on other connections: an event, fanned out to the endpoint.
        _move(app, payment_id, PaymentStatus.INITIATED)
        assert worker.fan_out() == 1
        endpoint = endpoints.get_endpoint(merchant.id, public_id, False, for_update=True)
        endpoints.update_endpoint(endpoint, {"disabled": True}, allowed_networks=[])
        db.session.commit()

    [stopped] = get_rows(app, NotificationDelivery, endpoint_id=endpoint_id)
    assert (stopped.status, stopped.last_error) == ("failed", "the endpoint was disabled")
    assert get_row(app, Notification, stopped.notification_id).status == "failed"
    worker.run_once()
    assert receiver.hits == 0
