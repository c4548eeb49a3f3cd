"""Disputes through the real stripe SDK: opened, moved and decided by the control routes,
answered with evidence or accepted over /v1, each change a signed event of Stripe's shape."""

from __future__ import annotations

import json

import pytest
import stripe

from stripe_emulator.testing import EmulatorError
from tests.support.waiting import wait_until

from .conftest import event_type, session_params


def paid_intent(client, emu) -> str:
    s = client.v1.checkout.sessions.create(params=session_params())
    emu.control("POST", f"checkout/sessions/{s.id}/pay", {"card": "4242424242424242"})
    return client.v1.checkout.sessions.retrieve(s.id).payment_intent


def received(receiver, dispute_id: str) -> list[str]:
    return [
        event_type(r)
        for r in receiver.requests
        if json.loads(r["body"])["data"]["object"].get("id") == dispute_id
    ]


def test_a_dispute_opens_takes_evidence_and_closes_with_stripes_events(
    client, emu, receiver, stripe_fixtures
):
    pi_id = paid_intent(client, emu)
    opened = emu.control("POST", "disputes", {"payment_intent": pi_id, "reason": "fraudulent"})[
        "dispute"
    ]
    dispute = client.v1.disputes.retrieve(opened["id"])
    assert isinstance(dispute, stripe.Dispute)
    assert set(stripe_fixtures["dispute"]) <= set(dispute.to_dict())  # Stripe's whole shape
    assert (dispute.status, dispute.amount, dispute.currency) == ("needs_response", 3998, "usd")
    assert dispute.payment_intent == pi_id and dispute.reason == "fraudulent"
    assert dispute.evidence_details.due_by > dispute.created
    assert client.v1.charges.retrieve(dispute.charge).disputed is True
    receiver.wait_for(lambda r: event_type(r) == "charge.dispute.funds_withdrawn")

    updated = client.v1.disputes.update(
        dispute.id, {"evidence": {"uncategorized_text": "Delivered, signed."}, "submit": True}
    )
    assert updated.status == "under_review"
    assert updated.evidence.uncategorized_text == "Delivered, signed."
    assert updated.evidence_details.submission_count == 1
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.disputes.update(dispute.id, {"evidence": {"uncategorized_text": "More"}})
    assert exc.value.code == "dispute_already_submitted"

    emu.control("POST", f"disputes/{dispute.id}/close", {"outcome": "won"})
    # Webhooks are delivered concurrently, as Stripe's are: in no guaranteed order.
    wait_until(lambda: len(received(receiver, dispute.id)) >= 5, what="the dispute's 5 events")
    assert sorted(received(receiver, dispute.id)) == sorted(
        [
            "charge.dispute.created",
            "charge.dispute.funds_withdrawn",
            "charge.dispute.updated",
            "charge.dispute.closed",
            "charge.dispute.funds_reinstated",
        ]
    )
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.disputes.close(dispute.id)
    assert exc.value.code == "dispute_already_closed"


def test_accepting_a_dispute_loses_it_once_and_a_late_answer_is_refused(client, emu, receiver):
    dispute_id = emu.control(
        "POST", "disputes", {"payment_intent": paid_intent(client, emu), "respond_in_seconds": 60}
    )["dispute"]["id"]
    emu.control("POST", "clock/advance", {"seconds": 120})
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.disputes.update(dispute_id, {"evidence": {"uncategorized_text": "Late"}})
    assert exc.value.code == "dispute_past_due"
    assert client.v1.disputes.retrieve(dispute_id).evidence_details.past_due is True

    assert client.v1.disputes.close(dispute_id).status == "lost"
    assert client.v1.disputes.close(dispute_id).status == "lost"  # accepting twice: no change
    receiver.wait_for(lambda r: event_type(r) == "charge.dispute.closed")
    assert received(receiver, dispute_id).count("charge.dispute.closed") == 1
    with pytest.raises(EmulatorError):
        emu.control("POST", f"disputes/{dispute_id}/update", {"status": "under_review"})


def test_the_network_moves_an_open_dispute_and_says_so_with_charge_dispute_updated(
    client, emu, receiver
):
    """The control route moves an open dispute to another open status (a network's review),
    answers the object, and sends charge.dispute.updated with the status it had; it refuses a
    closed status and a closed dispute."""
    opened = emu.control("POST", "disputes", {"payment_intent": paid_intent(client, emu)})[
        "dispute"
    ]
    assert opened["status"] == "needs_response"

    moved = emu.control("POST", f"disputes/{opened['id']}/update", {"status": "under_review"})
    assert moved["dispute"]["id"] == opened["id"]
    assert moved["dispute"]["status"] == "under_review"
    retrieved = client.v1.disputes.retrieve(opened["id"])
    assert (retrieved.status, retrieved.amount, retrieved.charge) == (
        "under_review", opened["amount"], opened["charge"],
    )  # fmt: skip
    [update] = receiver.wait_for(
        lambda r: (
            event_type(r) == "charge.dispute.updated"
            and json.loads(r["body"])["data"]["object"]["id"] == opened["id"]
        )
    )
    data = json.loads(update["body"])["data"]
    assert data["object"]["status"] == "under_review" and data["object"]["object"] == "dispute"
    assert data["previous_attributes"] == {"status": "needs_response"}

    back = emu.control("POST", f"disputes/{opened['id']}/update", {"status": "needs_response"})
    assert back["dispute"]["status"] == "needs_response"
    with pytest.raises(EmulatorError):  # a decision is the close route's
        emu.control("POST", f"disputes/{opened['id']}/update", {"status": "won"})
    assert client.v1.disputes.retrieve(opened["id"]).status == "needs_response"
    emu.control("POST", f"disputes/{opened['id']}/close", {"outcome": "lost"})
    with pytest.raises(EmulatorError):
        emu.control("POST", f"disputes/{opened['id']}/update", {"status": "under_review"})
    assert client.v1.disputes.retrieve(opened["id"]).status == "lost"


def test_a_dispute_is_seen_only_with_a_key_of_its_mode(client, emu):
    dispute_id = emu.control("POST", "disputes", {"payment_intent": paid_intent(client, emu)})[
        "dispute"
    ]["id"]
    live = stripe.StripeClient(
        emu.live_api_key, base_addresses={"api": emu.url}, max_network_retries=0
    )
    with pytest.raises(stripe.InvalidRequestError) as exc:
        live.v1.disputes.retrieve(dispute_id)
    assert exc.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError):
        live.v1.disputes.close(dispute_id)
    assert live.v1.disputes.list().data == []
    assert [d.id for d in client.v1.disputes.list().data] == [dispute_id]


def test_opening_a_dispute_checks_what_it_is_given(client, emu):
    with pytest.raises(EmulatorError):
        emu.control("POST", "disputes", {"charge": "ch_nope"})
    pi_id = paid_intent(client, emu)
    with pytest.raises(EmulatorError):
        emu.control("POST", "disputes", {"payment_intent": pi_id, "reason": "bored"})
    with pytest.raises(EmulatorError):
        emu.control("POST", "disputes", {"payment_intent": pi_id, "amount": 10**9})
    emu.control("POST", "disputes", {"payment_intent": pi_id})
    with pytest.raises(EmulatorError):
        emu.control("POST", "disputes", {"payment_intent": pi_id})  # already disputed


def test_the_money_a_chargeback_moves_is_in_its_balance_transactions_as_stripe_lists_them(
    client, emu, receiver, stripe_fixtures
):
    """Withdrawn (the amount and the dispute fee) when it opens, given back when it is won;
    an inquiry moves none, a lost chargeback gets nothing back."""
    won = emu.control("POST", "disputes", {"payment_intent": paid_intent(client, emu)})["dispute"]
    [withdrawn_event] = receiver.wait_for(
        lambda r: (
            event_type(r) == "charge.dispute.funds_withdrawn"
            and json.loads(r["body"])["data"]["object"]["id"] == won["id"]
        )
    )
    [withdrawn] = json.loads(withdrawn_event["body"])["data"]["object"]["balance_transactions"]
    assert set(stripe_fixtures["balance_transaction"]) <= set(withdrawn)  # Stripe's whole shape
    assert (withdrawn["object"], withdrawn["type"], withdrawn["reporting_category"]) == (
        "balance_transaction", "adjustment", "dispute",
    )  # fmt: skip
    assert (withdrawn["amount"], withdrawn["fee"], withdrawn["net"]) == (-3998, 1500, -5498)
    assert (withdrawn["source"], withdrawn["currency"]) == (won["id"], "usd")
    assert withdrawn["fee_details"][0]["type"] == "stripe_fee"

    emu.control("POST", f"disputes/{won['id']}/close", {"outcome": "won"})
    listed = client.v1.disputes.retrieve(won["id"]).to_dict()["balance_transactions"]
    assert [t["id"] for t in listed][:1] == [withdrawn["id"]]
    back = listed[1]
    assert (back["amount"], back["fee"], back["net"], back["reporting_category"]) == (
        3998, 0, 3998, "dispute_reversal",
    )  # fmt: skip

    lost = emu.control("POST", "disputes", {"payment_intent": paid_intent(client, emu)})["dispute"]
    emu.control("POST", f"disputes/{lost['id']}/close", {"outcome": "lost"})
    assert [t["amount"] for t in client.v1.disputes.retrieve(lost["id"]).balance_transactions] == [
        -3998
    ]
    inquiry = emu.control(
        "POST", "disputes", {"payment_intent": paid_intent(client, emu), "inquiry": True}
    )["dispute"]
    emu.control("POST", f"disputes/{inquiry['id']}/close", {"outcome": "won"})
    assert client.v1.disputes.retrieve(inquiry["id"]).balance_transactions == []
