"""Refunds through the real stripe SDK: create/retrieve/list, Stripe's errors, idempotency,
pending and failed refunds with their signed webhooks."""

from __future__ import annotations

import json

import pytest
import requests
import stripe

from stripe_emulator.testing import EmulatorError, run_emulator
from tests.support.waiting import wait_until

from .conftest import SECRET, event_type, session_params


def paid_intent(client, emu, **pay) -> str:
    """A paid 39.98 USD card payment; returns its PaymentIntent id."""
    s = client.v1.checkout.sessions.create(params=session_params())
    emu.control("POST", f"checkout/sessions/{s.id}/pay", pay or {"card": "4242424242424242"})
    return client.v1.checkout.sessions.retrieve(s.id).payment_intent


def events_of(client, type: str) -> list:
    return client.v1.events.list({"type": type, "limit": 100}).data


def test_partial_then_full_refund_updates_the_charge_and_emits_events(client, emu):
    pi_id = paid_intent(client, emu)
    charge_id = client.v1.payment_intents.retrieve(pi_id).latest_charge

    part = client.v1.refunds.create(
        {
            "payment_intent": pi_id,
            "amount": 1000,
            "reason": "requested_by_customer",
            "metadata": {"paybridge_refund_id": "re_local_1"},
        }
    )
    assert part.id.startswith("re_") and part.object == "refund"
    assert (part.status, part.amount, part.currency) == ("succeeded", 1000, "usd")
    assert (part.charge, part.payment_intent) == (charge_id, pi_id)
    assert part.reason == "requested_by_customer"
    assert part.metadata.to_dict() == {"paybridge_refund_id": "re_local_1"}
    charge = client.v1.charges.retrieve(charge_id)
    assert (charge.amount_refunded, charge.refunded) == (1000, False)

    rest = client.v1.refunds.create({"charge": charge_id})  # default: what remains
    assert (rest.amount, rest.status, rest.reason) == (2998, "succeeded", None)
    charge = client.v1.charges.retrieve(charge_id)
    assert (charge.amount_refunded, charge.refunded) == (3998, True)
    assert "refunds" not in charge  # API 2022-11-15 on: listed only when expanded
    expanded = client.v1.charges.retrieve(charge_id, {"expand": ["refunds"]})
    assert [r.id for r in expanded.refunds.data] == [rest.id, part.id]
    assert expanded.refunds.url == f"/v1/charges/{charge_id}/refunds"

    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.refunds.create({"payment_intent": pi_id, "amount": 1})
    assert (exc.value.http_status, exc.value.code) == (400, "charge_already_refunded")

    assert client.v1.refunds.retrieve(part.id).amount == 1000
    by_pi = client.v1.refunds.list({"payment_intent": pi_id})
    assert [r.id for r in by_pi.data] == [rest.id, part.id] and by_pi.url == "/v1/refunds"
    assert [r.id for r in client.v1.refunds.list({"charge": charge_id, "limit": 1}).data] == [
        rest.id
    ]
    other = paid_intent(client, emu)
    client.v1.refunds.create({"payment_intent": other, "amount": 5})
    assert len(client.v1.refunds.list().data) == 3
    assert [r.id for r in client.v1.refunds.list({"payment_intent": pi_id}).data] == [
        rest.id, part.id,
    ]  # fmt: skip

    refunded = [e for e in events_of(client, "charge.refunded") if e.data.object.id == charge_id]
    assert [e.data.object.amount_refunded for e in refunded] == [3998, 1000]
    assert isinstance(refunded[0].data.object, stripe.Charge)
    # The event's charge names its payment intent and the total refunded, not the refunds.
    assert all("refunds" not in e.data.object for e in refunded)
    assert refunded[0].data.object.payment_intent == pi_id
    created = [e.data.object.id for e in events_of(client, "refund.created")]
    assert {part.id, rest.id} <= set(created)
    assert events_of(client, "refund.created")[0].request.id is not None  # an API call caused it


def test_refund_errors_are_stripes(client, emu):
    pi_id = paid_intent(client, emu)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.refunds.create({"payment_intent": pi_id, "amount": 3999})
    e = exc.value
    assert (e.http_status, e.code, e.param) == (400, "amount_too_large", "amount")
    assert "greater than unrefunded amount" in e.user_message
    assert e.error.type == "invalid_request_error"

    for params, param in [
        ({"payment_intent": pi_id, "amount": 0}, "amount"),
        ({"payment_intent": pi_id, "amount": -5}, "amount"),
        ({"payment_intent": pi_id, "amount": "ten"}, "amount"),
        ({"payment_intent": pi_id, "reason": "changed_mind"}, "reason"),
        ({"payment_intent": pi_id, "colour": "red"}, "colour"),
        ({"amount": 100}, "charge"),
    ]:
        with pytest.raises(stripe.InvalidRequestError) as exc:
            client.v1.refunds.create(params)
        assert (exc.value.http_status, exc.value.param) == (400, param), params

    for params, param in [({"payment_intent": "pi_missing"}, "payment_intent"),
                          ({"charge": "ch_missing"}, "charge")]:  # fmt: skip
        with pytest.raises(stripe.InvalidRequestError) as exc:
            client.v1.refunds.create(params)
        assert (exc.value.http_status, exc.value.code, exc.value.param) == (
            404, "resource_missing", param,
        )  # fmt: skip
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.refunds.retrieve("re_missing")
    assert (exc.value.http_status, exc.value.code) == (404, "resource_missing")

    # A delayed payment still processing has no successful charge to refund.
    s = client.v1.checkout.sessions.create(params=session_params())
    emu.control("POST", f"checkout/sessions/{s.id}/pay", {"iban": "DE89370400440532013000"})
    processing = client.v1.checkout.sessions.retrieve(s.id).payment_intent
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.refunds.create({"payment_intent": processing})
    assert (exc.value.http_status, exc.value.code) == (400, "charge_not_refundable")
    assert client.v1.refunds.list().data == []  # nothing was created by the failures


def test_refund_idempotency_replays_and_refuses_other_params(client, emu):
    pi_id = paid_intent(client, emu)
    key = {"idempotency_key": "refund-re_local_7"}
    a = client.v1.refunds.create({"payment_intent": pi_id, "amount": 700}, options=key)
    b = client.v1.refunds.create({"payment_intent": pi_id, "amount": 700}, options=key)
    assert a.id == b.id
    assert b.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(client.v1.refunds.list().data) == 1
    charge = client.v1.charges.retrieve(a.charge)
    assert charge.amount_refunded == 700  # counted once
    assert len([e for e in events_of(client, "refund.created")]) == 1
    with pytest.raises(stripe.IdempotencyError):
        client.v1.refunds.create({"payment_intent": pi_id, "amount": 800}, options=key)

    # A lost response: the refund exists; the retry with the same key returns it.
    emu.control("POST", "faults", {"kind": "lose_response", "path": "/v1/refunds"})
    with pytest.raises(stripe.APIError):
        client.v1.refunds.create(
            {"payment_intent": pi_id, "amount": 300}, options={"idempotency_key": "lost"}
        )
    retry = client.v1.refunds.create(
        {"payment_intent": pi_id, "amount": 300}, options={"idempotency_key": "lost"}
    )
    assert len(client.v1.refunds.list().data) == 2
    assert client.v1.charges.retrieve(retry.charge).amount_refunded == 1000


def test_failed_refund_by_fault_and_by_control_with_events(client, emu, receiver):
    pi_id = paid_intent(client, emu)
    fault = {"kind": "refund_fail", "count": 1, "failure_reason": "lost_or_stolen_card"}
    emu.control("POST", "faults", fault)
    doomed = client.v1.refunds.create({"payment_intent": pi_id, "amount": 1500})
    assert doomed.status == "pending"  # Stripe answers first, the failure follows
    req = receiver.wait_for(
        lambda r: (
            event_type(r) == "refund.failed"
            and json.loads(r["body"])["data"]["object"]["id"] == doomed.id
        )
    )[0]
    event = stripe.Webhook.construct_event(req["body"], req["headers"]["Stripe-Signature"], SECRET)
    assert isinstance(event.data.object, stripe.Refund)
    assert (event.data.object.status, event.data.object.failure_reason) == (
        "failed", "lost_or_stolen_card",
    )  # fmt: skip
    failed = client.v1.refunds.retrieve(doomed.id)
    assert failed.status == "failed" and failed.failure_balance_transaction.startswith("txn_")
    charge = client.v1.charges.retrieve(failed.charge)
    assert (charge.amount_refunded, charge.refunded) == (0, False)  # the money is back
    updated = [e for e in events_of(client, "refund.updated") if e.data.object.id == doomed.id]
    assert updated[0].data.previous_attributes.status == "pending"

    ok = client.v1.refunds.create({"payment_intent": pi_id, "amount": 3998})  # the fault is used
    assert ok.status == "succeeded"
    result = emu.control("POST", f"refunds/{ok.id}/fail", {"failure_reason": "declined"})
    assert (result["refund"]["status"], result["refund"]["failure_reason"]) == (
        "failed", "declined",
    )  # fmt: skip
    assert client.v1.charges.retrieve(ok.charge).amount_refunded == 0
    receiver.wait_for(
        lambda r: (
            event_type(r) == "refund.failed"
            and json.loads(r["body"])["data"]["object"]["id"] == ok.id
        )
    )
    with pytest.raises(EmulatorError) as exc:
        emu.control("POST", f"refunds/{ok.id}/fail", {})
    assert exc.value.status == 400
    with pytest.raises(EmulatorError) as exc:
        emu.control("POST", f"refunds/{ok.id}/fail", {"failure_reason": "bored"})
    assert exc.value.status == 400
    with pytest.raises(EmulatorError) as exc:
        emu.control("POST", "refunds/re_missing/succeed", {})
    assert exc.value.status == 404


def test_pending_refund_succeeds_by_control(client, emu, receiver):
    pi_id = paid_intent(client, emu)
    emu.control("POST", "faults", {"kind": "refund_pending"})
    pending = client.v1.refunds.create({"payment_intent": pi_id, "amount": 500})
    assert (pending.status, pending.pending_reason) == ("pending", "processing")
    emu.control("POST", "clock/advance", {"seconds": 86400})
    assert client.v1.refunds.retrieve(pending.id).status == "pending"  # only a control settles it
    assert client.v1.charges.retrieve(pending.charge).amount_refunded == 500  # counted already

    done = emu.control("POST", f"refunds/{pending.id}/succeed", {})["refund"]
    assert done["status"] == "succeeded" and done["pending_reason"] is None
    assert client.v1.refunds.retrieve(pending.id).status == "succeeded"
    req = receiver.wait_for(
        lambda r: (
            event_type(r) == "refund.updated"
            and json.loads(r["body"])["data"]["object"]["id"] == pending.id
        )
    )[0]
    body = json.loads(req["body"])
    assert body["data"]["object"]["status"] == "succeeded"
    assert body["data"]["previous_attributes"] == {"status": "pending"}
    with pytest.raises(EmulatorError) as exc:
        emu.control("POST", f"refunds/{pending.id}/succeed", {})
    assert exc.value.status == 400


def test_refund_delay_flag_keeps_refunds_pending_until_the_clock_passes():
    with run_emulator(refund_delay=60) as emu:
        client = stripe.StripeClient(
            emu.api_key, base_addresses={"api": emu.url}, max_network_retries=0
        )
        pi_id = paid_intent(client, emu)
        r = client.v1.refunds.create({"payment_intent": pi_id})
        assert r.status == "pending"
        emu.control("POST", "clock/advance", {"seconds": 30})
        assert client.v1.refunds.retrieve(r.id).status == "pending"
        emu.control("POST", "clock/advance", {"seconds": 31})
        wait_until(
            lambda: client.v1.refunds.retrieve(r.id).status == "succeeded",
            what="the refund succeeded",
            interval=0.02,
        )
        types = [e.type for e in client.v1.events.list({"limit": 100}).data]
        assert {"refund.created", "charge.refunded", "refund.updated"} <= set(types)


def test_refund_webhooks_are_signed_and_delivered(client, emu, receiver):
    pi_id = paid_intent(client, emu)
    r = client.v1.refunds.create({"payment_intent": pi_id, "amount": 100})
    for type, cls in [("refund.created", stripe.Refund), ("charge.refunded", stripe.Charge)]:
        req = receiver.wait_for(lambda x, t=type: event_type(x) == t)[0]
        body = json.loads(req["body"])
        assert set(body) == {
            "id",
            "object",
            "api_version",
            "created",
            "data",
            "livemode",
            "pending_webhooks",
            "request",
            "type",
        }  # fmt: skip  (nothing of the emulator's own bookkeeping goes on the wire)
        event = stripe.Webhook.construct_event(
            req["body"], req["headers"]["Stripe-Signature"], SECRET
        )
        assert isinstance(event.data.object, cls)
        obj = event.data.object
        if type == "refund.created":
            assert obj.id == r.id
        else:  # the charge: its total refunded and intent, no refund list (API 2022-11-15 on)
            assert (obj.amount_refunded, obj.payment_intent) == (100, pi_id)
            assert "refunds" not in obj
    raw = requests.get(
        f"{emu.url}/v1/refunds/{r.id}", headers={"Authorization": f"Bearer {emu.api_key}"}
    )
    assert raw.status_code == 200 and raw.headers["Request-Id"].startswith("req_")
