"""Test and live events at one URL: each mode's endpoint secret vouches for its own mode's
events only, and an event never moves a payment (refund, subscription) of the other mode."""

from __future__ import annotations

import json
import secrets
import time

import pytest
from prometheus_client import REGISTRY

from app.extensions import db
from app.models import Payment, PaymentStatus, PspEvent, Refund, Subscription
from app.subscriptions.service import ensure_for_first_payment
from tests.support.factories import PaymentRef, record_payment
from tests.support.rows import count_rows, get_row
from tests.webhooks.helpers import (
    counts,
    load_payment,
    new_event_id,
    stripe_event_body,
    stripe_headers,
)

URL = "/webhooks/stripe"
COMPLETED = "checkout.session.completed"


def mode_name(livemode: bool) -> str:
    return "live" if livemode else "test"


def payment_of_mode(app, merchant_id: int, livemode: bool, **fields) -> PaymentRef:
    with app.app_context():
        payment = record_payment(merchant_id, PaymentStatus.INITIATED, livemode=livemode, **fields)
        db.session.commit()
        return PaymentRef.of(payment)


def checkout_event(payment: PaymentRef, *, livemode: bool) -> bytes:
    """A checkout.session.completed about the payment's session, saying `livemode`."""
    event = json.loads(stripe_event_body(COMPLETED, payment, livemode=livemode))
    event["livemode"] = livemode
    return json.dumps(event).encode()


def event_about(event_type: str, obj: dict, *, livemode: bool) -> bytes:
    return json.dumps(
        {
            "id": new_event_id(),
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": int(time.time()),
            "livemode": livemode,
            "type": event_type,
            "data": {"object": obj},
        }
    ).encode()


def post_signed(client, body: bytes, *, livemode: bool):
    """The event as that mode's Stripe endpoint sends it: signed with its secret."""
    mode = "LIVE" if livemode else "TEST"
    secret = client.application.config[f"STRIPE_{mode}_WEBHOOK_SECRETS"][0]
    return client.post(URL, data=body, headers=stripe_headers(body, secret))


def mismatches(event_type: str) -> float:
    labels = {"type": event_type, "outcome": "mode_mismatch"}
    return REGISTRY.get_sample_value("paybridge_webhook_events_total", labels) or 0.0


@pytest.mark.parametrize("livemode", [False, True], ids=mode_name)
def test_each_modes_events_apply_to_their_own_payments(app, client, merchant, livemode):
    payment = payment_of_mode(app, merchant.id, livemode)

    response = post_signed(client, checkout_event(payment, livemode=livemode), livemode=livemode)

    assert response.status_code == 200
    assert response.get_json() == {"received": True, "outcome": "applied"}
    assert load_payment(app, payment.id).status == "SUCCESS"
    stored = get_row(app, PspEvent, payment_id=payment.id)
    assert stored.livemode is livemode


@pytest.mark.parametrize("livemode", [False, True], ids=mode_name)
def test_an_event_of_the_other_mode_is_stored_flagged_and_never_moves_the_payment(
    app, client, merchant, livemode
):
    """A live event naming a test payment (and the other way round): stored with the outcome
    mode_mismatch and a detail, counted, acknowledged; the payment stays as it was."""
    payment = payment_of_mode(app, merchant.id, not livemode)
    before = mismatches(COMPLETED)

    response = post_signed(client, checkout_event(payment, livemode=livemode), livemode=livemode)

    assert response.status_code == 200
    assert response.get_json() == {"received": True, "outcome": "mode_mismatch"}
    stored = load_payment(app, payment.id)
    assert (stored.status, stored.status_version) == ("INITIATED", 2)
    assert [change.to_status for change in stored.history] == ["CREATED", "INITIATED"]
    assert counts(app, payment.id) == {"events": 1, "notifications": 0, "conflicts": 0}
    event = get_row(app, PspEvent, payment_id=payment.id)
    assert (event.livemode, event.outcome) == (livemode, "mode_mismatch")
    assert f"{mode_name(livemode)} event about {mode_name(not livemode)} payment" in event.detail
    assert mismatches(COMPLETED) == before + 1


@pytest.mark.parametrize("livemode", [False, True], ids=mode_name)
def test_an_event_signed_with_one_modes_secret_that_says_the_other_mode_is_refused(
    app, client, merchant, livemode
):
    """A test endpoint's secret must not vouch for a live event (nor a live one for a test
    event): 400, nothing stored, whatever payment it names."""
    payment = payment_of_mode(app, merchant.id, not livemode)
    body = checkout_event(payment, livemode=not livemode)

    response = post_signed(client, body, livemode=livemode)

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "WEBHOOK_PAYLOAD_INVALID"
    assert load_payment(app, payment.id).status == "INITIATED"
    assert count_rows(app, PspEvent) == 0


def test_one_secret_set_for_both_modes_still_lets_each_mode_vouch_for_its_events(
    app, client, merchant, monkeypatch
):
    """The test secret verifies a live event first (test is tried first) but may not vouch for
    it; the live mode's (same) secret then does: no mode's events are lost to the mistake."""
    shared = app.config["STRIPE_TEST_WEBHOOK_SECRETS"]
    monkeypatch.setitem(app.config, "STRIPE_LIVE_WEBHOOK_SECRETS", shared)
    app.extensions.pop("paybridge_psp", None)
    try:
        payment = payment_of_mode(app, merchant.id, True)
        body = checkout_event(payment, livemode=True)

        response = post_signed(client, body, livemode=True)

        assert response.status_code == 200, response.get_json()
        assert load_payment(app, payment.id).status == "SUCCESS"
    finally:
        app.extensions.pop("paybridge_psp", None)


def test_an_event_whose_livemode_is_not_a_boolean_is_refused(app, client, merchant):
    payment = payment_of_mode(app, merchant.id, False)
    event = json.loads(checkout_event(payment, livemode=False))
    event["livemode"] = "false"

    response = post_signed(client, json.dumps(event).encode(), livemode=False)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "WEBHOOK_PAYLOAD_INVALID"
    assert count_rows(app, PspEvent) == 0


def test_a_secret_of_neither_mode_is_a_bad_signature(app, client, merchant):
    payment = payment_of_mode(app, merchant.id, True)
    body = checkout_event(payment, livemode=True)

    response = client.post(URL, data=body, headers=stripe_headers(body, "whsec_of_nobody"))

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "WEBHOOK_SIGNATURE_INVALID"
    assert count_rows(app, PspEvent) == 0


def test_a_live_refund_event_never_moves_a_test_refund(app, client, merchant):
    with app.app_context():
        payment = record_payment(merchant.id, PaymentStatus.SUCCESS, amount=1000)
        refund = Refund(
            payment_id=payment.id,
            merchant_id=merchant.id,
            amount=400,
            currency="EUR",
            status="pending",
            psp_refund_id="re_" + secrets.token_hex(8),
        )
        db.session.add(refund)
        db.session.commit()
        refund_pk, psp_refund_id, payment_pk = refund.id, refund.psp_refund_id, payment.id
    before = mismatches("refund.updated")
    body = event_about(
        "refund.updated",
        {"id": psp_refund_id, "object": "refund", "status": "succeeded", "amount": 400,
         "currency": "eur", "payment_intent": "pi_x", "metadata": {}},
        livemode=True,
    )  # fmt: skip

    response = post_signed(client, body, livemode=True)

    assert response.get_json() == {"received": True, "outcome": "mode_mismatch"}
    assert get_row(app, Refund, refund_pk).status == "pending"
    assert get_row(app, Payment, payment_pk).refunded_amount == 0
    assert mismatches("refund.updated") == before + 1


def test_a_live_subscription_event_never_touches_a_test_subscription(app, client, merchant):
    psp_id = "sub_" + secrets.token_hex(8)
    with app.app_context():
        first = record_payment(
            merchant.id,
            PaymentStatus.SUCCESS,
            payment_type="RECC",
            interval="month",
            psp_subscription_id=psp_id,
        )
        subscription = ensure_for_first_payment(first)
        db.session.commit()
        subscription_pk, status = subscription.id, subscription.status
    body = event_about(
        "customer.subscription.deleted",
        {"id": psp_id, "object": "subscription", "status": "canceled", "metadata": {}},
        livemode=True,
    )

    response = post_signed(client, body, livemode=True)

    assert response.get_json() == {"received": True, "outcome": "mode_mismatch"}
    assert get_row(app, Subscription, subscription_pk).status == status != "cancelled"
    event = get_row(app, PspEvent, event_type="customer.subscription.deleted")
    assert f"live event about test subscription {psp_id}" in event.detail


def test_a_live_event_naming_a_test_payment_by_metadata_does_not_teach_it_its_subscription(
    app, client, merchant
):
    """A subscription event found through the first payment named in its metadata is checked
    before that payment learns anything from it."""
    with app.app_context():
        first = record_payment(
            merchant.id, PaymentStatus.INITIATED, payment_type="RECC", interval="month"
        )
        db.session.commit()
        first_pk, public_id, reference = first.id, first.public_id, first.merchant_reference
    psp_id = "sub_" + secrets.token_hex(8)
    body = event_about(
        "customer.subscription.created",
        {"id": psp_id, "object": "subscription", "status": "active",
         "metadata": {"paybridge_payment_id": public_id, "merchant_reference": reference}},
        livemode=True,
    )  # fmt: skip

    response = post_signed(client, body, livemode=True)

    assert response.get_json() == {"received": True, "outcome": "mode_mismatch"}
    assert get_row(app, Payment, first_pk).psp_subscription_id is None
    assert count_rows(app, Subscription) == 0
