"""charge.succeeded / charge.pending / charge.failed: sent as Stripe sends them, with the whole
Charge, before the intent's and the session's events of the same act, in that order."""

from __future__ import annotations

import json

from tests.support.psp import wait_for_deliveries

from .conftest import Receiver, event_type, session_params


def act_events(client) -> list:
    """Every event so far, oldest first."""
    return list(reversed(client.v1.events.list({"limit": 100}).data))


def received(receiver) -> list[tuple[str, str]]:
    """(type, data.object.id) of each request the receiver got, in arrival order."""
    bodies = [json.loads(r["body"]) for r in receiver.requests]
    return [(b["type"], b["data"]["object"]["id"]) for b in bodies]


def test_a_card_payment_sends_its_charge_first_and_delivers_the_act_in_order(
    client, emu, receiver, stripe_fixtures
):
    s = client.v1.checkout.sessions.create(params=session_params())
    emu.control("POST", f"checkout/sessions/{s.id}/pay", {"card": "5555555555554444"})
    s = client.v1.checkout.sessions.retrieve(s.id, {"expand": ["payment_intent"]})
    pi = s.payment_intent
    assert [e.type for e in act_events(client)] == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]
    wait_for_deliveries(emu)
    # Each endpoint receives one act's events in the order they were made.
    assert received(receiver) == [
        ("charge.succeeded", pi.latest_charge),
        ("payment_intent.succeeded", pi.id),
        ("checkout.session.completed", s.id),
    ]
    charge = json.loads(receiver.requests[0]["body"])["data"]["object"]
    assert set(stripe_fixtures["charge"]) - {"refunds"} <= set(charge)
    assert charge == client.v1.charges.retrieve(pi.latest_charge).to_dict()
    assert (charge["object"], charge["status"], charge["paid"], charge["captured"]) == (
        "charge", "succeeded", True, True,
    )  # fmt: skip
    assert (charge["payment_intent"], charge["amount"], charge["livemode"]) == (pi.id, 3998, False)
    card = charge["payment_method_details"]["card"]
    assert (charge["payment_method_details"]["type"], card["brand"], card["last4"]) == (
        "card", "mastercard", "4444",
    )  # fmt: skip
    assert charge["outcome"]["type"] == "authorized"
    assert (charge["failure_code"], charge["failure_message"]) == (None, None)


def test_a_decline_sends_charge_failed_before_payment_failed(client, emu, receiver):
    s = client.v1.checkout.sessions.create(params=session_params())
    emu.control("POST", f"checkout/sessions/{s.id}/pay", {"card": "4000000000009995"})
    wait_for_deliveries(emu)
    assert [t for t, _ in received(receiver)] == ["charge.failed", "payment_intent.payment_failed"]
    charge = json.loads(receiver.requests[0]["body"])["data"]["object"]
    intent = json.loads(receiver.requests[1]["body"])["data"]["object"]
    # The intent's error names the same charge: one attempt, told twice.
    assert intent["last_payment_error"]["charge"] == charge["id"]
    assert (charge["status"], charge["paid"], charge["payment_intent"]) == (
        "failed", False, intent["id"],
    )  # fmt: skip
    assert (charge["failure_code"], charge["outcome"]["reason"]) == (
        "card_declined", "insufficient_funds",
    )  # fmt: skip
    assert charge["failure_message"] == "Your card has insufficient funds."
    assert charge["outcome"]["type"] == "issuer_declined"


def test_three_d_secure_failure_has_no_charge_event(client, emu, receiver):
    s = client.v1.checkout.sessions.create(params=session_params())
    emu.control(
        "POST",
        f"checkout/sessions/{s.id}/pay",
        {"card": "4000002500003155", "three_d_secure": "deny"},
    )
    wait_for_deliveries(emu)
    assert [t for t, _ in received(receiver)] == ["payment_intent.payment_failed"]


def test_a_sepa_debit_is_pending_then_succeeds_or_fails_with_its_charge(client, emu, receiver):
    paid = client.v1.checkout.sessions.create(params=session_params())
    failed = client.v1.checkout.sessions.create(params=session_params())
    emu.control("POST", f"checkout/sessions/{paid.id}/pay", {"iban": "DE89370400440532013000"})
    wait_for_deliveries(emu)
    assert [t for t, _ in received(receiver)] == ["charge.pending", "checkout.session.completed"]
    pending = json.loads(receiver.requests[0]["body"])["data"]["object"]
    assert (pending["status"], pending["paid"]) == ("pending", False)
    assert pending["payment_method_details"]["sepa_debit"]["last4"] == "3000"
    emu.control("POST", f"checkout/sessions/{paid.id}/settle", {})
    wait_for_deliveries(emu)
    assert [t for t, _ in received(receiver)[2:]] == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.async_payment_succeeded",
    ]
    settled = json.loads(receiver.requests[2]["body"])["data"]["object"]
    assert (settled["id"], settled["status"], settled["paid"]) == (pending["id"], "succeeded", True)

    receiver.clear()
    emu.control("POST", f"checkout/sessions/{failed.id}/pay", {"iban": "DE62370400440532013001"})
    wait_for_deliveries(emu)  # two acts: each in order, not one after the other
    emu.control("POST", f"checkout/sessions/{failed.id}/settle", {})
    wait_for_deliveries(emu)
    assert [t for t, _ in received(receiver)] == [
        "charge.pending",
        "checkout.session.completed",
        "charge.failed",
        "payment_intent.payment_failed",
        "checkout.session.async_payment_failed",
    ]
    charge = json.loads(receiver.requests[2]["body"])["data"]["object"]
    assert (charge["status"], charge["failure_code"]) == ("failed", "generic_decline")
    assert charge["failure_message"] == "The payment was declined by the bank."


def test_a_subscription_invoice_charge_comes_before_its_intent_and_invoice(client, emu):
    s = client.v1.checkout.sessions.create(
        params=session_params(
            mode="subscription",
            line_items=[
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 1200,
                        "product_data": {"name": "Club"},
                        "recurring": {"interval": "month"},
                    },
                    "quantity": 1,
                }
            ],
        )
    )
    emu.control("POST", f"checkout/sessions/{s.id}/pay", {"card": "4242424242424242"})
    types = [e.type for e in act_events(client)]
    assert types.index("charge.succeeded") < types.index("payment_intent.succeeded")
    assert types.index("payment_intent.succeeded") < types.index("invoice.paid")
    [charge_event] = [e for e in act_events(client) if e.type == "charge.succeeded"]
    assert charge_event.data.object.customer.startswith("cus_")


def test_an_endpoint_gets_only_the_charge_events_it_enabled(client, emu):
    other = Receiver(secret=None)
    try:
        client.v1.webhook_endpoints.create(
            {"url": other.url, "enabled_events": ["charge.failed", "checkout.session.completed"]}
        )
        s = client.v1.checkout.sessions.create(params=session_params())
        emu.control("POST", f"checkout/sessions/{s.id}/pay", {"card": "4000000000000002"})
        emu.control("POST", f"checkout/sessions/{s.id}/pay", {"card": "4242424242424242"})
        wait_for_deliveries(emu)
        assert [event_type(r) for r in other.requests] == [
            "charge.failed",
            "checkout.session.completed",
        ]
    finally:
        other.close()


def test_a_fault_can_hold_one_event_type_back(client, emu, receiver):
    emu.control(
        "POST", "faults", {"kind": "webhook_out_of_order", "event_type": "charge.succeeded"}
    )
    first = client.v1.checkout.sessions.create(params=session_params())
    emu.control("POST", f"checkout/sessions/{first.id}/pay", {"card": "4000000000000002"})
    wait_for_deliveries(emu)
    # The fault waits for its type: the decline's charge.failed went out as usual.
    assert [t for t, _ in received(receiver)] == ["charge.failed", "payment_intent.payment_failed"]
    assert emu.control("GET", "faults")["data"]
