"""Endpoint health against real receivers: an endpoint whose every attempt failed for the
configured time (seconds here) is disabled by the worker, with a banner, an audit entry by the
system and a metric; one success restarts the clock; enabling it again redelivers, to it only
and in order, what it missed (dashboard and API)."""

from __future__ import annotations

import html as htmllib
import threading
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from standardwebhooks import Webhook

from app.common.locks import lock_row
from app.extensions import db
from app.models import (
    AuditLog,
    Notification,
    NotificationAttempt,
    NotificationDelivery,
    NotificationEndpoint,
    PaymentStatus,
    StatusSource,
)
from app.notifications import endpoints, health
from app.payments.state import lock_payment, transition
from tests.support.api import auth_headers
from tests.support.factories import add_endpoint, make_payment
from tests.support.pages import csrf_from, logged_in
from tests.support.receiver import Receiver
from tests.support.rows import get_row, get_rows
from tests.support.waiting import wait_for_locking_read

LIMIT = 2  # seconds of nothing but failures before an endpoint is disabled (3 days in production)


@pytest.fixture
def health_config(app, notify_config):
    saved = app.config["NOTIFY_ENDPOINT_DISABLE_AFTER_SECONDS"]
    notify_config.update(
        NOTIFY_RETRY_SCHEDULE=[1] * 10, NOTIFY_ENDPOINT_DISABLE_AFTER_SECONDS=LIMIT
    )
    yield notify_config
    app.config["NOTIFY_ENDPOINT_DISABLE_AFTER_SECONDS"] = saved


@pytest.fixture
def second_receiver():
    r = Receiver().start()
    yield r
    r.stop()


def _move(app, payment_id: int, *targets: PaymentStatus) -> None:
    for target in targets:
        with app.app_context():
            transition(lock_payment(payment_id), target, source=StatusSource.WEBHOOK)
            db.session.commit()


def _endpoint(app, merchant_id: int, url: str) -> tuple[int, str, str]:
    with app.app_context():
        endpoint = add_endpoint(merchant_id, url, ["*"])
        db.session.commit()
        return endpoint.id, endpoint.public_id, endpoint.signing_secret


def _endpoint_row(endpoint_id: int):
    return lambda: db.session.get(NotificationEndpoint, endpoint_id)


def _disabled(endpoint_id: int):
    return lambda: not db.session.get(NotificationEndpoint, endpoint_id).enabled


def _disabled_count() -> float:
    labels = {"reason": "failing"}
    return REGISTRY.get_sample_value("paybridge_notification_endpoints_disabled_total", labels) or 0


def test_an_endpoint_failing_for_the_configured_time_is_disabled_shown_and_redelivered_to(
    app, make_merchant, make_user, receiver, second_receiver, health_config, worker
):
    merchant, _ = make_merchant(notify_url=None)
    other, _ = make_merchant(name="Other shop", notify_url=None)
    make_user(merchant.id, "owner@failing.example")
    make_user(other.id, "owner@other.example")
    failing_id, failing_public, secret = _endpoint(app, merchant.id, receiver.url)
    healthy_id, _, _ = _endpoint(app, merchant.id, second_receiver.url)
    receiver.status = 500
    disabled_before = _disabled_count()

    payment_id = make_payment(app, merchant.id, PaymentStatus.CREATED).id
    _move(app, payment_id, PaymentStatus.INITIATED, PaymentStatus.PENDING)
    worker.run_until(_disabled(failing_id), what="the failing endpoint disabled")

    endpoint = get_row(app, NotificationEndpoint, failing_id)
    assert endpoint.disabled_reason == "failing"
    assert endpoint.disabled_at - endpoint.failing_since >= timedelta(seconds=LIMIT)
    assert receiver.hits >= LIMIT + 1  # it was tried all along (every second), never answered
    # What was still on its way there stops, kept as failed so it can be redelivered.
    stopped = get_rows(app, NotificationDelivery, endpoint_id=failing_id)
    assert [(d.status, d.last_error) for d in stopped] == [
        ("failed", "the endpoint was disabled")
    ] * 2
    # The other endpoint of the merchant got everything and stays enabled, its clock unset.
    healthy = get_row(app, NotificationEndpoint, healthy_id)
    assert (healthy.enabled, healthy.failing_since) == (True, None)
    assert [r.json()["type"] for r in second_receiver.requests] == [
        "payment.initiated",
        "payment.pending",
    ]
    # Audited by the system (no user), counted, and shown on every page of that merchant only.
    [entry] = get_rows(app, AuditLog, action="endpoint_auto_disable")
    assert (entry.user_id, entry.merchant_id, entry.target_id) == (
        None,
        merchant.id,
        failing_public,
    )
    assert entry.detail["by"] == "system" and entry.detail["url"] == receiver.url
    assert _disabled_count() == disabled_before + 1
    owner = logged_in(app, "owner@failing.example")
    for page in ("/dashboard/", "/dashboard/payments", "/dashboard/notification-endpoints"):
        shown = htmllib.unescape(owner.get(page).get_data(as_text=True))
        assert 'id="endpoint-banner"' in shown and receiver.url in shown, page
    assert "every attempt failed for too long" in shown
    assert 'id="endpoint-banner"' not in logged_in(app, "owner@other.example").get(
        "/dashboard/"
    ).get_data(as_text=True)

    # While disabled, a new event gets no delivery to it at all.
    _move(app, payment_id, PaymentStatus.SUCCESS)
    hits_when_disabled = receiver.hits
    worker.run_until(lambda: len(second_receiver.requests) == 3, what="the other endpoint")
    assert receiver.hits == hits_when_disabled
    assert len(get_rows(app, NotificationDelivery, endpoint_id=failing_id)) == 2

    # Enabling: the confirmation says how many it missed; confirmed, those three go to it
    # only, oldest first, and the banner is gone.
    receiver.status = 200
    enable = f"/dashboard/notification-endpoints/{failing_public}/enable"
    confirm = htmllib.unescape(owner.get(enable).get_data(as_text=True))
    assert "It missed 3 notifications" in confirm and "Yes, enable it" in confirm
    done = owner.post(enable, data={"csrf_token": csrf_from(confirm), "redeliver": "y"})
    assert done.status_code == 302
    worker.run_until(lambda: len(receiver.requests) == 3, what="the missed notifications")
    received = [Webhook(secret).verify(r.body, r.headers) for r in receiver.requests]
    assert [m["type"] for m in received] == [
        "payment.initiated",
        "payment.pending",
        "payment.succeeded",
    ]
    # Same events (webhook-id) as the other endpoint got; nothing sent to it twice.
    assert [m["id"] for m in received] == [r.json()["id"] for r in second_receiver.requests]
    assert len(second_receiver.requests) == 3
    endpoint = get_row(app, NotificationEndpoint, failing_id)
    assert (endpoint.enabled, endpoint.disabled_reason, endpoint.failing_since) == (
        True,
        None,
        None,
    )
    notifications = get_rows(app, Notification, payment_id=payment_id)
    assert {n.status for n in notifications} == {"delivered"}
    [enabled] = get_rows(app, AuditLog, action="endpoint_enable")
    assert (enabled.detail["redeliver_missed"], enabled.detail["missed"]) == (True, 3)
    page = owner.get("/dashboard/").get_data(as_text=True)
    assert 'id="endpoint-banner"' not in page


def test_one_success_in_the_window_restarts_the_clock(
    app, make_merchant, receiver, health_config, worker
):
    health_config["NOTIFY_ENDPOINT_DISABLE_AFTER_SECONDS"] = LIMIT + 1
    merchant, _ = make_merchant(notify_url=None)
    endpoint_id, _, _ = _endpoint(app, merchant.id, receiver.url)
    row = _endpoint_row(endpoint_id)
    receiver.status = 500
    first = make_payment(app, merchant.id, PaymentStatus.CREATED).id
    _move(app, first, PaymentStatus.INITIATED)
    started = worker.run_until(lambda: row().failing_since, what="the clock started")

    receiver.status = 200  # its retry succeeds: the run of failures is over
    worker.run_until(lambda: row().failing_since is None, what="the clock cleared")
    receiver.status = 500
    second = make_payment(app, merchant.id, PaymentStatus.CREATED).id
    _move(app, second, PaymentStatus.INITIATED)
    restarted = worker.run_until(lambda: row().failing_since, what="the clock started again")
    assert restarted > started

    # Past the limit counted from the first failure, its attempts still fail, and it is
    # still enabled: a success came in between.
    line = started + timedelta(seconds=LIMIT + 1)

    def failed_past_the_line():
        return db.session.scalar(
            db.select(db.func.count())
            .select_from(NotificationAttempt)
            .join(NotificationDelivery, NotificationDelivery.id == NotificationAttempt.delivery_id)
            .where(
                NotificationDelivery.endpoint_id == endpoint_id,
                NotificationAttempt.attempted_at > line,
                NotificationAttempt.status_code == 500,
            )
        )

    worker.run_until(failed_past_the_line, what="a failed attempt past the first run's limit")
    endpoint = get_row(app, NotificationEndpoint, endpoint_id)
    assert endpoint.enabled and endpoint.failing_since == restarted
    # ... until the second run lasts the limit.
    worker.run_until(_disabled(endpoint_id), what="disabled after the second run")
    endpoint = get_row(app, NotificationEndpoint, endpoint_id)
    assert endpoint.disabled_at - restarted >= timedelta(seconds=LIMIT + 1)


def test_enabling_through_the_api_redelivers_what_it_missed_when_asked(
    client, app, make_merchant, receiver, second_receiver, health_config, worker
):
    merchant, key = make_merchant(notify_url=None)
    _, public, secret = _endpoint(app, merchant.id, receiver.url)
    _endpoint(app, merchant.id, second_receiver.url)
    path = f"/api/v1/notification_endpoints/{public}"
    off = client.patch(path, json={"disabled": True}, headers=auth_headers(key))
    assert off.get_json()["status"] == "disabled"

    payment_id = make_payment(app, merchant.id, PaymentStatus.CREATED).id
    _move(app, payment_id, PaymentStatus.INITIATED, PaymentStatus.SUCCESS)
    worker.run_until(lambda: len(second_receiver.requests) == 2, what="the other endpoint")
    assert receiver.hits == 0

    for body, message in [
        ({"redeliver_missed": True}, "redeliver_missed goes with disabled: false"),
        ({"disabled": True, "redeliver_missed": True}, "redeliver_missed goes with"),
        ({"disabled": False, "redeliver_missed": "yes"}, "Not a valid boolean"),
    ]:
        refused = client.patch(path, json=body, headers=auth_headers(key))
        assert refused.status_code == 400, body
        assert message in str(refused.get_json()), refused.get_json()
    assert get_row(app, NotificationEndpoint, public_id=public).enabled is False

    on = client.patch(
        path, json={"disabled": False, "redeliver_missed": True}, headers=auth_headers(key)
    )
    assert on.status_code == 200, on.get_json()
    assert (on.get_json()["status"], on.get_json()["redelivered"]) == ("enabled", 2)
    worker.run_until(lambda: len(receiver.requests) == 2, what="the missed notifications")
    received = [Webhook(secret).verify(r.body, r.headers) for r in receiver.requests]
    assert [m["type"] for m in received] == ["payment.initiated", "payment.succeeded"]
    assert len(second_receiver.requests) == 2  # the other endpoint gets nothing twice

    # Enabled already: nothing missed, nothing redelivered; without the flag no count.
    again = client.patch(
        path, json={"disabled": False, "redeliver_missed": True}, headers=auth_headers(key)
    )
    assert again.get_json()["redelivered"] == 0
    plain = client.patch(path, json={"description": "orders"}, headers=auth_headers(key))
    assert "redelivered" not in plain.get_json()
    assert plain.get_json()["failing_since"] is None


def test_an_event_not_fanned_out_when_enabled_reaches_every_endpoint_through_the_pump(
    client, app, make_merchant, receiver, second_receiver, health_config, worker
):
    """Enabling with redeliver_missed leaves an event the pump has not fanned out yet to the
    pump: a delivery made for it here would pass for its fan-out, and the merchant's other
    endpoint would never get it."""
    merchant, key = make_merchant(notify_url=None)
    _, public, _ = _endpoint(app, merchant.id, receiver.url)
    _endpoint(app, merchant.id, second_receiver.url)
    path = f"/api/v1/notification_endpoints/{public}"
    assert client.patch(path, json={"disabled": True}, headers=auth_headers(key)).status_code == 200

    payment_id = make_payment(app, merchant.id, PaymentStatus.CREATED).id
    _move(app, payment_id, PaymentStatus.INITIATED)  # its event waits, new, for the pump
    on = client.patch(
        path, json={"disabled": False, "redeliver_missed": True}, headers=auth_headers(key)
    )
    assert (on.get_json()["status"], on.get_json()["redelivered"]) == ("enabled", 0)
    worker.run_until(
        lambda: len(receiver.requests) == 1 and len(second_receiver.requests) == 1,
        what="the event at both endpoints",
    )


def test_enabling_redelivers_what_was_fanned_out_after_the_request_began(
    app, make_merchant, receiver, second_receiver, health_config, finish_payment, worker
):
    """An event fanned out while the endpoint was disabled, but after the enabling request's
    snapshot began, looks new there: the missed set is read as committed, so it is queued."""
    merchant, _ = make_merchant(notify_url=None)
    endpoint_id, public, secret = _endpoint(app, merchant.id, receiver.url)
    _endpoint(app, merchant.id, second_receiver.url)
    with app.app_context():
        endpoint = db.session.get(NotificationEndpoint, endpoint_id)
        endpoints.update_endpoint(endpoint, {"disabled": True}, allowed_networks=[])
        db.session.commit()

    with app.app_context():  # the merchant's enabling request
        assert db.session.scalar(select(func.count()).select_from(Notification)) == 0
        # Meanwhile, on other connections: a payment's events (initiated, succeeded), fanned
        # out to the other endpoint only.
        payment_id, _ = finish_payment(merchant.id)
        assert worker.fan_out() == 2
        endpoint = endpoints.get_endpoint(merchant.id, public, False, for_update=True)
        since = health.missed_since(endpoint)
        endpoints.update_endpoint(endpoint, {"disabled": False}, allowed_networks=[])
        assert health.redeliver_missed(endpoint, since) == 2
        db.session.rollback()  # the enable and what it queued were committed already

    notes = get_rows(app, Notification, payment_id=payment_id)
    queued = get_rows(app, NotificationDelivery, endpoint_id=endpoint_id)
    assert [(d.notification_id, d.status) for d in queued] == [(n.id, "pending") for n in notes]
    assert get_row(app, NotificationEndpoint, endpoint_id).enabled
    worker.run_until(lambda: len(receiver.requests) == 2, what="the missed events")
    received = [Webhook(secret).verify(r.body, r.headers) for r in receiver.requests]
    assert [m["id"] for m in received] == [n.public_id for n in notes]  # in order
    assert len(second_receiver.requests) == 2  # the other endpoint got each once


def test_redelivering_what_it_missed_commits_each_batch_and_counts_what_was_queued(
    app, make_merchant, receiver, health_config, finish_payment, worker, monkeypatch
):
    """Batches of BATCH_SIZE, each committed (short locks, as every bulk redelivery); the
    count is what was queued: a second enable racing the first queues nothing twice, and
    says so."""
    monkeypatch.setattr(health, "BATCH_SIZE", 3)
    merchant, _ = make_merchant(notify_url=None)
    endpoint_id, public, _ = _endpoint(app, merchant.id, receiver.url)
    with app.app_context():
        endpoint = db.session.get(NotificationEndpoint, endpoint_id)
        endpoints.update_endpoint(endpoint, {"disabled": True}, allowed_networks=[])
        db.session.commit()
    for _ in range(4):
        finish_payment(merchant.id)
    assert worker.fan_out() == 8  # unrouted: no endpoint of the merchant is enabled
    notes = [n.id for n in get_rows(app, Notification, merchant_id=merchant.id)]

    # A second enabling request, whose snapshot began before the first enabled it.
    began, first_done, second = threading.Event(), threading.Event(), {}

    def second_request() -> None:
        with app.app_context():
            since = health.missed_since(endpoints.get_endpoint(merchant.id, public, False))
            began.set()
            first_done.wait(10)
            endpoint = endpoints.get_endpoint(merchant.id, public, False, for_update=True)
            second["queued"] = health.redeliver_missed(endpoint, since)

    request = threading.Thread(target=second_request)
    request.start()
    assert began.wait(10)
    with app.app_context():
        endpoint = endpoints.get_endpoint(merchant.id, public, False, for_update=True)
        since = health.missed_since(endpoint)
        endpoints.update_endpoint(endpoint, {"disabled": False}, allowed_networks=[])
        assert health.redeliver_missed(endpoint, since) == 8  # in batches of 3
        db.session.rollback()  # each batch was committed already
    first_done.set()
    request.join(10)
    assert second == {"queued": 0}  # all 8 are on their way already: none queued twice

    queued = get_rows(app, NotificationDelivery, endpoint_id=endpoint_id)
    assert sorted(d.notification_id for d in queued) == sorted(notes)
    assert {d.status for d in queued} == {"pending"}
    assert {n.status for n in get_rows(app, Notification, merchant_id=merchant.id)} == {"pending"}


def test_the_dashboard_enables_an_endpoint_the_worker_is_disabling_once_it_is_done(
    app, make_merchant, make_user, receiver
):
    """As the API's PATCH (one locking read for both): the merchant's enable waits for the
    auto-disable under way, then enables what is disabled by then, not what its snapshot saw."""
    merchant, _ = make_merchant(notify_url=None)
    make_user(merchant.id, "owner@racing.example")
    endpoint_id, public, _ = _endpoint(app, merchant.id, receiver.url)
    owner = logged_in(app, "owner@racing.example")
    enable = f"/dashboard/notification-endpoints/{public}/enable"
    token = csrf_from(owner.get(enable).get_data(as_text=True))
    answer: dict = {}
    request = threading.Thread(
        target=lambda: answer.update(post=owner.post(enable, data={"csrf_token": token}))
    )
    with app.app_context():  # the worker's auto-disable, under way: locked, not committed yet
        endpoints.disable(lock_row(NotificationEndpoint, endpoint_id), endpoints.FAILING)
        request.start()
        what = "the enable locking the endpoint"
        wait_for_locking_read(app, "notification_endpoints", what=what, details=lambda: answer)
        db.session.commit()
    request.join(timeout=30)

    assert answer["post"].status_code == 302
    stored = get_row(app, NotificationEndpoint, endpoint_id)
    assert (stored.enabled, stored.disabled_reason, stored.failing_since) == (True, None, None)
    [entry] = get_rows(app, AuditLog, action="endpoint_enable")
    assert entry.target_id == public
