"""Webhook delivery: Stripe-compatible signatures, retries, endpoints, pause/replay and faults."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
import stripe

from stripe_emulator.testing import EmulatorError, run_emulator
from tests.support.psp import wait_for_deliveries
from tests.support.waiting import wait_until

from .conftest import SECRET, Receiver, event_type, session_params


def pay(emu, client, **body) -> str:
    s = client.v1.checkout.sessions.create(params=session_params())
    emu.control("POST", f"checkout/sessions/{s.id}/pay", body or {"card": "4242424242424242"})
    return s.id


def for_session(sid):
    return lambda r: json.loads(r["body"])["data"]["object"].get("id") == sid


def test_signature_verifies_with_sdk_and_fails_with_wrong_secret(client, emu, receiver):
    sid = pay(emu, client)
    req = receiver.wait_for(
        lambda r: event_type(r) == "checkout.session.completed" and for_session(sid)(r)
    )[0]
    header = req["headers"]["Stripe-Signature"]
    assert header.startswith("t=") and ",v1=" in header and " " not in header
    assert req["headers"]["Content-Type"] == "application/json; charset=utf-8"
    event = stripe.Webhook.construct_event(req["body"], header, SECRET)
    assert event.type == "checkout.session.completed"
    assert isinstance(event.data.object, stripe.checkout.Session)
    assert event.data.object.payment_status == "paid"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(req["body"], header, "whsec_wrong")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(req["body"] + b" ", header, SECRET)
    stored = client.v1.events.retrieve(event.id)
    assert stored.data.object.id == sid


def test_retries_until_receiver_answers_2xx(client, emu, receiver):
    # One act's events go out in order (charge, intent, session): the session's gets the errors.
    receiver.statuses.extend([200, 200, 500, 503])
    sid = pay(emu, client, outcome="paid")
    wait_until(
        lambda: any(
            d["status"] == "succeeded"
            for d in emu.control("GET", "deliveries?type=checkout.session.completed")["data"]
        ),
        what="the session's delivery answered 2xx",
        interval=0.02,
    )
    [delivery] = emu.control("GET", "deliveries?type=checkout.session.completed")["data"]
    codes = [a["status_code"] for a in delivery["attempts"]]
    assert codes[-1] == 200 and len(codes) >= 2
    got = [r for r in receiver.requests if for_session(sid)(r)]
    assert len({json.loads(r["body"])["id"] for r in got}) == 1
    event_id = delivery["event_id"]
    assert client.v1.events.retrieve(event_id).pending_webhooks == 0


def test_gives_up_after_schedule_and_reports_failed(client, emu, receiver):
    receiver.statuses.extend([500] * 12)  # 3 events (charge, intent, session), 4 tries each
    pay(emu, client, outcome="paid")
    deliveries = wait_until(
        lambda: [
            d
            for d in emu.control("GET", "deliveries?type=payment_intent.succeeded")["data"]
            if d["status"] == "failed"
        ],
        what="a delivery given up",
        interval=0.02,
    )
    assert len(deliveries[0]["attempts"]) == 4  # first try + 3 retries of "0.1,0.2,0.3"
    failed = client.v1.events.list({"delivery_success": False}).data
    assert deliveries[0]["event_id"] in [e.id for e in failed]
    receiver.statuses.clear()


def test_webhook_endpoint_api_returns_secret_and_honours_enabled_events(client, emu):
    other = Receiver(secret=None)
    try:
        ep = client.v1.webhook_endpoints.create(
            {"url": other.url, "enabled_events": ["checkout.session.expired"]}
        )
        assert ep.secret.startswith("whsec_") and ep.status == "enabled"
        assert "secret" not in client.v1.webhook_endpoints.retrieve(ep.id).to_dict()
        pay(emu, client)
        s = client.v1.checkout.sessions.create(params=session_params())
        client.v1.checkout.sessions.expire(s.id)
        req = other.wait_for(lambda r: True)[0]
        sig = req["headers"]["Stripe-Signature"]
        evt = stripe.Webhook.construct_event(req["body"], sig, ep.secret)
        assert evt.type == "checkout.session.expired"
        wait_for_deliveries(emu)  # whatever else it would send has been sent
        assert [event_type(r) for r in other.requests] == ["checkout.session.expired"]
        control_ep = emu.control("POST", "webhook_endpoints", {"url": other.url})
        assert control_ep["secret"].startswith("whsec_")
        assert control_ep["enabled_events"] == ["*"]
    finally:
        other.close()


def test_pause_resume_and_redeliver(client, emu, receiver):
    emu.control("POST", "deliveries/pause")
    sid = pay(emu, client)
    time.sleep(0.3)
    assert not [r for r in receiver.requests if for_session(sid)(r)]
    statuses = {d["status"] for d in emu.control("GET", "deliveries")["data"]}
    assert statuses == {"paused"}
    emu.control("POST", "deliveries/resume")
    req = receiver.wait_for(for_session(sid))[0]
    event_id = json.loads(req["body"])["id"]
    emu.control("POST", f"events/{event_id}/redeliver")
    wait_until(
        lambda: len([r for r in receiver.requests if json.loads(r["body"])["id"] == event_id]) == 2,
        what="the event received twice",
        interval=0.02,
    )
    with pytest.raises(EmulatorError):
        emu.control("POST", "events/evt_missing/redeliver")


def test_fault_duplicate_and_bad_signature(client, emu, receiver):
    emu.control("POST", "faults", {"kind": "webhook_duplicate"})
    emu.control("POST", "faults", {"kind": "webhook_bad_signature"})
    s = client.v1.checkout.sessions.create(params=session_params())
    client.v1.checkout.sessions.expire(s.id)

    def verified(r):
        try:
            stripe.Webhook.construct_event(r["body"], r["headers"]["Stripe-Signature"], SECRET)
            return True
        except stripe.SignatureVerificationError:
            return False

    wait_until(
        lambda: len([r for r in receiver.requests if verified(r)]) >= 2,
        what="two verified copies",
        interval=0.02,
    )
    bodies = [json.loads(r["body"])["id"] for r in receiver.requests]
    assert len(set(bodies)) == 1 and len(bodies) == 3  # one bad signature, then two copies
    assert len([r for r in receiver.requests if not verified(r)]) == 1


def test_fault_out_of_order_and_drop(client, emu, receiver):
    emu.control("POST", "faults", {"kind": "webhook_out_of_order"})
    first = client.v1.checkout.sessions.create(params=session_params())
    second = client.v1.checkout.sessions.create(params=session_params())
    client.v1.checkout.sessions.expire(first.id)
    client.v1.checkout.sessions.expire(second.id)
    wait_until(lambda: len(receiver.requests) == 2, what="two events", interval=0.02)
    order = [json.loads(r["body"])["data"]["object"]["id"] for r in receiver.requests]
    assert order == [second.id, first.id]

    receiver.clear()
    emu.control("POST", "faults", {"kind": "webhook_drop"})
    third = client.v1.checkout.sessions.create(params=session_params())
    client.v1.checkout.sessions.expire(third.id)
    wait_for_deliveries(emu)  # whatever it would send has been sent
    assert receiver.requests == []
    dropped = client.v1.events.list({"type": "checkout.session.expired", "limit": 1}).data[0]
    assert dropped.data.object.id == third.id and dropped.pending_webhooks == 1
    assert dropped.id in [e.id for e in client.v1.events.list({"delivery_success": False}).data]


def test_retries_after_the_receiver_times_out_then_answers_2xx():
    """The receiver holds the first attempt past the emulator's 0.5 s timeout; the retry lands."""
    slow = Receiver()
    slow.delays.append(2.0)  # first request: answer only after 2 s; then at once
    try:
        with run_emulator(
            webhooks=[(slow.url, SECRET)],
            retry_schedule="0.3,1,2",
            extra_args=["--webhook-timeout", "0.5"],
        ) as emu:
            client = stripe.StripeClient(emu.api_key, base_addresses={"api": emu.url})
            s = client.v1.checkout.sessions.create(params=session_params())
            client.v1.checkout.sessions.expire(s.id)
            [delivery] = wait_until(
                lambda: [
                    d for d in emu.control("GET", "deliveries")["data"] if d["status"] != "pending"
                ],
                what="the delivery ended",
                interval=0.02,
            )
            assert delivery["status"] == "succeeded"
            timed_out, *_, landed = delivery["attempts"]
            assert timed_out["status_code"] is None and "timed out" in timed_out["error"]
            # The emulator gave up at its own timeout, not when the receiver finally answered.
            assert 400 <= timed_out["duration_ms"] < 1800
            assert (landed["status_code"], landed["error"]) == (200, None)
            assert len(delivery["attempts"]) == 2

            # The same signed event both times; the receiver saw both and verified both.
            assert len(slow.requests) == 2
            ids = {json.loads(r["body"])["id"] for r in slow.requests}
            assert ids == {delivery["event_id"]}
            assert [r["status"] for r in slow.requests] == [200, 200]
            retried = slow.requests[1]
            # Retried while the receiver was still holding the first attempt.
            assert retried["received_at"] - slow.requests[0]["received_at"] < 2.0
            event = stripe.Webhook.construct_event(
                retried["body"], retried["headers"]["Stripe-Signature"], SECRET
            )
            assert event.type == "checkout.session.expired" and event.data.object.id == s.id
            stored = client.v1.events.retrieve(delivery["event_id"])
            assert stored.pending_webhooks == 0
            succeeded = client.v1.events.list({"delivery_success": True}).data
            assert stored.id in [e.id for e in succeeded]
    finally:
        slow.close()


def test_delivery_never_happens_inside_the_causing_request(client, emu, receiver):
    """Each request that emits events returns while its webhooks are still held at the receiver.

    The receiver answers nothing until the gate opens, so a request delivering inline would
    block for as long (up to the emulator's 10 s timeout); instead each returns at once.
    """

    def expire_by_api(sid):
        client.v1.checkout.sessions.expire(sid)

    def pay_by_control(sid):
        emu.control("POST", f"checkout/sessions/{sid}/pay", {"card": "4242424242424242"})

    def pay_on_the_page(sid):
        form = {"method": "card", "email": "ada@example.com", "card_number": "4242424242424242"}
        url = f"{emu.url}/c/pay/{sid}"
        assert requests.post(url, data=form, allow_redirects=False, timeout=10).status_code == 303

    for cause in (expire_by_api, pay_by_control, pay_on_the_page):
        receiver.clear()
        sid = client.v1.checkout.sessions.create(params=session_params()).id
        receiver.gate = threading.Event()
        try:
            started = time.monotonic()
            cause(sid)
            returned = time.monotonic()
            assert returned - started < 2.0, cause.__name__

            # Its act's first webhook reached the receiver and is held there, unanswered (the
            # act's next ones wait for it).
            [held] = receiver.wait_for(lambda r: True)
            assert held["answered_at"] is None, cause.__name__
            event = client.v1.events.retrieve(json.loads(held["body"])["id"])
            first = "checkout.session.expired" if cause is expire_by_api else "charge.succeeded"
            assert event.type == first and event.pending_webhooks == 1

            receiver.gate.set()
            wait_until(
                lambda: all(
                    d["status"] == "succeeded" for d in emu.control("GET", "deliveries")["data"]
                ),
                what="every delivery answered 2xx",
                interval=0.02,
            )
            assert held["answered_at"] > returned, cause.__name__
            assert client.v1.events.retrieve(event.id).pending_webhooks == 0
        finally:
            receiver.gate.set()
