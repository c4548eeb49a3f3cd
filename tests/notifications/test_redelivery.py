"""Redelivery against real receivers: one event (to every endpoint that receives it, or one),
one delivery, and every failed delivery of an endpoint in a time window — through the API, with
the same webhook-id, only what was asked for, and nothing queued twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import Notification, NotificationDelivery, NotificationEndpoint, utcnow
from tests.support.api import auth_headers
from tests.support.factories import add_endpoint, make_api_key
from tests.support.receiver import Receiver

SUCCEEDED = ["payment.succeeded"]


@pytest.fixture
def two_receivers():
    """A failing receiver (answers 500 until a test changes it) and a healthy one."""
    failing, healthy = Receiver(status=500).start(), Receiver().start()
    yield failing, healthy
    failing.stop()
    healthy.stop()


@pytest.fixture
def no_retries(notify_config):
    """One attempt each: a failing receiver fails a delivery at once."""
    notify_config["NOTIFY_RETRY_SCHEDULE"] = []
    return notify_config


def _deliveries(endpoint_id: int) -> dict[int, str]:
    """notification id → status of the endpoint's deliveries."""
    rows = db.session.execute(
        select(NotificationDelivery.notification_id, NotificationDelivery.status).where(
            NotificationDelivery.endpoint_id == endpoint_id
        )
    ).all()
    return {n: s for n, s in rows}


def _settled(app, endpoint_ids, notification_ids):
    """A worker condition: every delivery of these events to these endpoints is final."""

    def check():
        db.session.expire_all()
        for endpoint_id in endpoint_ids:
            states = _deliveries(endpoint_id)
            if any(states.get(n) not in ("delivered", "failed") for n in notification_ids):
                return False
        return True

    return check


@pytest.fixture
def failed_world(app, make_merchant, two_receivers, no_retries, finish_payment, worker):
    """A merchant with endpoint A (failing) and B (healthy), both receiving payment.succeeded,
    and four events created 4, 3, 2 and 1 hours ago: each failed at A, delivered at B."""
    failing, healthy = two_receivers
    merchant, key = make_merchant(notify_url=None)
    with app.app_context():
        a = add_endpoint(merchant.id, failing.url, SUCCEEDED)
        b = add_endpoint(merchant.id, healthy.url, SUCCEEDED)
        db.session.commit()
        a_id, a_public, b_id, b_public = a.id, a.public_id, b.id, b.public_id
    notes = [finish_payment(merchant.id)[1] for _ in range(4)]
    worker.run_until(_settled(app, (a_id, b_id), notes), what="every first attempt")
    now = utcnow().replace(microsecond=0)
    with app.app_context():
        assert set(_deliveries(a_id).values()) == {"failed"}
        assert set(_deliveries(b_id).values()) == {"delivered"}
        for hours, notification_id in zip((4, 3, 2, 1), notes, strict=True):
            db.session.execute(
                update(Notification)
                .where(Notification.id == notification_id)
                .values(created_at=now - timedelta(hours=hours))
            )
        db.session.commit()
        msg_ids = [db.session.get(Notification, n).public_id for n in notes]
    failing.status = 200  # the client app is fixed
    return {
        "key": key,
        "merchant": merchant,
        "a": (a_id, a_public),
        "b": (b_id, b_public),
        "notes": notes,
        "msg_ids": msg_ids,
        "now": now,
        "failing": failing,
        "healthy": healthy,
    }


def _post(client, key, path, body=None):
    return client.post(path, json=body, headers=auth_headers(key))


def test_bulk_redelivery_of_a_window_sends_only_failed_in_it_once(
    app, client, failed_world, worker
):
    w = failed_world
    (a_id, a_public), b_id = w["a"], w["b"][0]
    now, notes = w["now"], w["notes"]
    window = {
        "created_gte": (now - timedelta(hours=3, minutes=30)).isoformat() + "Z",
        "created_lte": (now - timedelta(hours=1, minutes=30)).isoformat() + "Z",
    }
    answer = _post(client, w["key"], f"/api/v1/notification_endpoints/{a_public}/redeliver", window)
    assert answer.status_code == 202, answer.get_json()
    body = answer.get_json()
    assert (body["object"], body["endpoint"], body["queued"]) == ("redelivery", a_public, 2)
    assert body["created_gte"] == window["created_gte"]
    # Asked again: the two are pending now, not failed; nothing is queued twice.
    again = _post(client, w["key"], f"/api/v1/notification_endpoints/{a_public}/redeliver", window)
    assert again.status_code == 202 and again.get_json()["queued"] == 0

    worker.run_until(_settled(app, (a_id,), notes), what="the redeliveries")
    received = w["failing"].wait_for(2)
    assert sorted(r.headers["webhook-id"] for r in received) == sorted(w["msg_ids"][1:3])
    with app.app_context():
        states = _deliveries(a_id)
        assert [states[n] for n in notes] == ["failed", "delivered", "delivered", "failed"]
        assert set(_deliveries(b_id).values()) == {"delivered"}  # the other endpoint untouched
    assert len(w["healthy"].requests) == 4  # its first four, nothing more

    # Open-ended: everything still failed at A (the first and the last).
    rest = _post(client, w["key"], f"/api/v1/notification_endpoints/{a_public}/redeliver")
    assert rest.status_code == 202 and rest.get_json()["queued"] == 2
    worker.run_until(_settled(app, (a_id,), notes), what="the rest")
    assert len(w["failing"].wait_for(4)) == 4


def test_bulk_redelivery_refuses_what_it_cannot_do(app, client, failed_world, make_merchant):
    w = failed_world
    a_public = w["a"][1]
    path = f"/api/v1/notification_endpoints/{a_public}/redeliver"
    backwards = _post(
        client,
        w["key"],
        path,
        {"created_gte": "2026-12-07T10:00:00Z", "created_lte": "2026-12-07T09:00:00Z"},
    )
    assert backwards.status_code == 400
    assert backwards.get_json()["error"]["code"] == "VALIDATION_ERROR"
    assert "created_lte" in str(backwards.get_json()["error"])
    not_a_time = _post(client, w["key"], path, {"created_gte": "yesterday"})
    assert not_a_time.status_code == 400 and "created_gte" in str(not_a_time.get_json())
    unknown = _post(client, w["key"], path, {"status": "failed", "limit": 3})
    assert unknown.status_code == 400
    not_json = client.post(path, data="x=1", headers=auth_headers(w["key"]))
    assert not_json.status_code == 415
    missing = _post(client, w["key"], "/api/v1/notification_endpoints/we_nope/redeliver")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "NOTIFICATION_ENDPOINT_NOT_FOUND"
    _, other_key = make_merchant(notify_url=None)
    assert _post(client, other_key, path).status_code == 404  # someone else's endpoint
    live_key = make_api_key(app, w["merchant"].id, livemode=True)
    assert _post(client, live_key, path).status_code == 404  # the other mode's
    with app.app_context():
        db.session.execute(
            update(NotificationEndpoint)
            .where(NotificationEndpoint.public_id == a_public)
            .values(enabled=False, disabled_reason="test")
        )
        db.session.commit()
    disabled = _post(client, w["key"], path)
    assert disabled.status_code == 409
    assert disabled.get_json()["error"]["code"] == "NOTIFICATION_ENDPOINT_DISABLED"
    with app.app_context():
        assert set(_deliveries(w["a"][0]).values()) == {"failed"}  # nothing was queued


def test_redeliver_an_event_to_one_endpoint_or_every_one(app, client, failed_world, worker):
    w = failed_world
    (a_id, a_public), (b_id, b_public) = w["a"], w["b"]
    first, msg_id = w["notes"][0], w["msg_ids"][0]
    path = f"/api/v1/events/{msg_id}/redeliver"

    one = _post(client, w["key"], path, {"endpoint": a_public})
    assert one.status_code == 202, one.get_json()
    assert one.get_json()["endpoints"] == [a_public] and one.get_json()["queued"] == 1
    # While that delivery is pending, redelivering it again is refused, clearly.
    pending = _post(client, w["key"], path, {"endpoint": a_public})
    assert pending.status_code == 409
    assert pending.get_json()["error"]["code"] == "NOTIFICATION_PENDING"
    worker.run_until(_settled(app, (a_id,), [first]), what="the redelivery")
    [got] = w["failing"].wait_for(1)
    assert got.headers["webhook-id"] == msg_id  # the same id: the client drops repeats

    # No body: every endpoint that receives it now.
    every = client.post(path, headers=auth_headers(w["key"]))
    assert every.status_code == 202, every.get_json()
    assert sorted(every.get_json()["endpoints"]) == sorted([a_public, b_public])
    worker.run_until(_settled(app, (a_id, b_id), [first]), what="both")
    assert [r.headers["webhook-id"] for r in w["healthy"].requests].count(msg_id) == 2

    assert _post(client, w["key"], "/api/v1/events/msg_nope/redeliver").status_code == 404
    wrong = _post(client, w["key"], path, {"endpoint": "we_nope"})
    assert wrong.status_code == 404
    assert wrong.get_json()["error"]["code"] == "NOTIFICATION_ENDPOINT_NOT_FOUND"
    bad = _post(client, w["key"], path, {"endpoint": 7})
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "VALIDATION_ERROR"
    with app.app_context():
        unsubscribed = add_endpoint(w["merchant"].id, w["healthy"].url, ["refund.failed"])
        db.session.commit()
        unsubscribed_id = unsubscribed.public_id
    refused = _post(client, w["key"], path, {"endpoint": unsubscribed_id})
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "NO_NOTIFICATION_ENDPOINT"


def _set_endpoint(app, endpoint_id: int, **values) -> None:
    with app.app_context():
        db.session.execute(
            update(NotificationEndpoint)
            .where(NotificationEndpoint.id == endpoint_id)
            .values(**values)
        )
        db.session.commit()


def test_the_cli_resends_each_failed_delivery_to_its_endpoint_only(
    app, failed_world, runner, worker
):
    w = failed_world
    (a_id, a_public), b_id = w["a"], w["b"][0]
    delivered_to_b = len(w["healthy"].requests)
    # A disabled endpoint's failed deliveries are named and skipped, not sent anywhere else.
    _set_endpoint(app, a_id, enabled=False, disabled_reason="disabled by the merchant")
    skipped = runner.invoke(args=["notifications", "resend", "--all-failed"])
    assert skipped.exit_code == 0, skipped.output
    assert (
        f"Skipped 4 failed deliveries to {a_public} (disabled: disabled by the merchant)."
        in skipped.output
    )
    assert "0 failed deliveries queued again; 4 skipped" in skipped.output
    with app.app_context():
        assert set(_deliveries(a_id).values()) == {"failed"}
        assert set(_deliveries(b_id).values()) == {"delivered"}  # no copy queued for B

    # Enabled again: one endpoint's, in a window (the two events of the last 2.5 hours) ...
    _set_endpoint(app, a_id, enabled=True, disabled_reason=None)
    since = (w["now"] - timedelta(minutes=150)).isoformat()
    window = runner.invoke(
        args=["notifications", "resend", "--all-failed", "--endpoint", a_public, "--since", since]
    )
    assert window.exit_code == 0, window.output
    assert f"Queued 2 failed deliveries to {a_public}" in window.output
    with app.app_context():
        states = _deliveries(a_id)
    assert [states[n] for n in w["notes"]] == ["failed", "failed", "pending", "pending"]
    # ... then the rest, up to a time; what is queued already is not queued twice.
    until = (w["now"] - timedelta(minutes=150)).isoformat()
    rest = runner.invoke(args=["notifications", "resend", "--all-failed", "--until", until])
    assert rest.exit_code == 0, rest.output
    assert "2 failed deliveries queued again." in rest.output
    worker.run_until(_settled(app, (a_id, b_id), w["notes"]), what="every resend")
    assert sorted(r.headers["webhook-id"] for r in w["failing"].wait_for(4)) == sorted(w["msg_ids"])
    with app.app_context():
        assert set(_deliveries(a_id).values()) == {"delivered"}
    assert len(w["healthy"].requests) == delivered_to_b  # B got nothing twice
    nothing = runner.invoke(args=["notifications", "resend", "--all-failed"])
    assert nothing.exit_code == 0 and "0 failed deliveries queued again." in nothing.output

    # A deleted endpoint's failure is reported as such, every run, and never sent.
    with app.app_context():
        db.session.execute(
            update(NotificationDelivery)
            .where(NotificationDelivery.endpoint_id == a_id)
            .where(NotificationDelivery.notification_id == w["notes"][0])
            .values(status="failed")
        )
        db.session.commit()
    _set_endpoint(app, a_id, enabled=False, deleted_at=utcnow())
    for _ in range(2):
        gone = runner.invoke(args=["notifications", "resend", "--all-failed"])
        assert f"Skipped 1 failed deliveries to {a_public} (deleted)." in gone.output
        assert "0 failed deliveries queued again; 1 skipped" in gone.output

    # The options go with --all-failed, and a time must be one.
    alone = runner.invoke(args=["notifications", "resend", w["msg_ids"][0], "--endpoint", a_public])
    assert alone.exit_code == 2 and "go with --all-failed" in alone.output
    bad = runner.invoke(args=["notifications", "resend", "--all-failed", "--until", "soon"])
    assert bad.exit_code == 2 and "--until 'soon'" in bad.output
    unknown = runner.invoke(args=["notifications", "resend", "--all-failed", "--endpoint", "we_x"])
    assert unknown.exit_code == 1 and "No notification endpoint we_x" in unknown.output


@pytest.mark.parametrize("to_one", [False, True], ids=["every-endpoint", "one-endpoint"])
def test_an_event_not_yet_fanned_out_is_still_being_delivered(
    app, client, make_merchant, receiver, worker, to_one
):
    """Redelivering an event the pump has not fanned out yet is refused, and makes no delivery:
    one made here would pass for the fan-out and the other endpoint would never get it."""
    merchant, key = make_merchant(notify_url=None)
    with app.app_context():
        first = add_endpoint(merchant.id, receiver.url, SUCCEEDED)
        add_endpoint(merchant.id, receiver.url, SUCCEEDED)
        note = Notification(
            merchant_id=merchant.id,
            livemode=False,
            event_type="payment.succeeded",
            payload={"type": "payment.succeeded", "data": {}},
            status=Notification.STATUS_NEW,
            next_attempt_at=None,
        )
        db.session.add(note)
        db.session.commit()
        msg_id, note_id, first_id = note.public_id, note.id, first.public_id
    body = {"endpoint": first_id} if to_one else None
    answer = _post(client, key, f"/api/v1/events/{msg_id}/redeliver", body)
    assert answer.status_code == 409, answer.get_json()
    assert answer.get_json()["error"]["code"] == "NOTIFICATION_PENDING"
    with app.app_context():
        assert _deliveries_of(note_id) == []  # none made beside the pump's own
    worker.fan_out()
    with app.app_context():
        assert len(_deliveries_of(note_id)) == 2  # the pump sends it to both endpoints


def _deliveries_of(notification_id: int) -> list:
    return db.session.scalars(
        select(NotificationDelivery).where(NotificationDelivery.notification_id == notification_id)
    ).all()
