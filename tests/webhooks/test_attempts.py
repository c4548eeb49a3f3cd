"""Attempts, payment methods and failure reasons, end to end: payments registered at the
emulator, paid (or declined) there, learned through its real webhooks over HTTP."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Payment, PaymentAttempt, RollupWatermark
from app.payments.attempts import METHOD_WATERMARK
from app.tasks.payments import learn_payment_methods
from tests.support.factories import make_merchant, registered_payment
from tests.support.psp import pay_session, stripe_client, stripe_get, wait_for_deliveries
from tests.support.waiting import wait_for_payment_status, wait_until
from tests.webhooks.helpers import load_payment, stripe_headers

INSUFFICIENT_FUNDS = "4000000000009995"


def attempts(app, payment_id: int) -> list[PaymentAttempt]:
    with app.app_context():
        rows = db.session.scalars(
            select(PaymentAttempt)
            .where(PaymentAttempt.payment_id == payment_id)
            .order_by(PaymentAttempt.attempted_at, PaymentAttempt.id)
        ).all()
        db.session.expunge_all()
        return list(rows)


def wait_for_attempts(app, payment_id: int, count: int) -> list[PaymentAttempt]:
    return wait_until(
        lambda: (rows := attempts(app, payment_id)) and len(rows) >= count and rows,
        what=f"{count} attempts of payment {payment_id}",
    )


def lose_charge_events(emulator) -> None:
    """Stripe's charge.succeeded / charge.pending events get lost: how the payment was paid
    is left to the worker's lookup (its fallback)."""
    for event_type in ("charge.succeeded", "charge.pending"):
        drop = {"kind": "webhook_drop", "event_type": event_type, "count": 10}
        emulator.control("POST", "faults", drop)


def test_a_decline_then_a_success_records_both_attempts_and_the_method(
    app, stripe_delivers, client
):
    merchant, key = make_merchant(app, "Attempt Shop", "http://127.0.0.1:9/notify")
    payment = registered_payment(app, merchant.id, amount=2500)
    lose_charge_events(stripe_delivers)
    declined = pay_session(stripe_delivers, payment.session_id, card=INSUFFICIENT_FUNDS)
    assert declined["declined"] is True
    [failed] = wait_for_attempts(app, payment.id, 1)
    assert (failed.outcome, failed.decline_code, failed.failure_code) == (
        "failed",
        "insufficient_funds",
        "card_declined",
    )
    assert (failed.method_type, failed.card_brand, failed.card_last4) == ("card", "visa", "9995")
    assert failed.psp_charge_id.startswith("ch_")
    tried = load_payment(app, payment.id)
    assert tried.status == "INITIATED"
    # Not paid yet, it is found by the card it was declined with; no paid method is claimed.
    assert (tried.method_type, tried.card_brand, tried.card_last4) == ("card", "visa", "9995")
    assert tried.payment_method is None
    headers = {"Authorization": f"Bearer {key}"}
    found = client.get("/api/v1/payments?card_last4=9995", headers=headers).get_json()["data"]
    assert [p["id"] for p in found] == [payment.public_id]
    assert found[0]["payment_method"] is None

    pay_session(stripe_delivers, payment.session_id, card="5555555555554444")
    wait_for_payment_status(app, payment.id, "SUCCESS")
    # Without its charge event the webhook asked the PSP nothing: the worker's job learns how
    # it was paid.
    assert load_payment(app, payment.id).payment_method is None
    with app.app_context():
        assert learn_payment_methods() == 1
        assert learn_payment_methods() == 0  # learned once
    first, paid = attempts(app, payment.id)
    assert first.id == failed.id
    assert (paid.outcome, paid.card_brand, paid.card_last4) == ("succeeded", "mastercard", "4444")
    stored = load_payment(app, payment.id)
    assert (stored.method_type, stored.card_brand, stored.card_last4) == (
        "card",
        "mastercard",
        "4444",
    )
    assert stored.payment_method["funding"] == "credit"
    assert stored.failure_reason is None

    body = client.get(
        f"/api/v1/payments/{payment.public_id}", headers={"Authorization": f"Bearer {key}"}
    ).get_json()
    assert [a["outcome"] for a in body["attempts"]] == ["failed", "succeeded"]
    assert body["attempts"][0]["decline_code"] == "insufficient_funds"
    assert body["payment_method"]["brand"] == "mastercard"
    assert body["payment_method"]["last4"] == "4444"
    assert body["failure_reason"] is None


def test_replayed_and_late_payment_failed_events_add_no_attempt(app, stripe_delivers, client):
    merchant, _ = make_merchant(app, "Replay Shop", "http://127.0.0.1:9/notify")
    payment = registered_payment(app, merchant.id, amount=1200)
    pay_session(stripe_delivers, payment.session_id, card="4000000000000002")
    wait_for_attempts(app, payment.id, 1)
    pay_session(stripe_delivers, payment.session_id, card="4242424242424242")
    wait_for_payment_status(app, payment.id, "SUCCESS")
    with app.app_context():
        learn_payment_methods()
    wait_for_attempts(app, payment.id, 2)
    [failed_event] = [
        e
        for e in stripe_client(stripe_delivers).v1.events.list(
            {"type": "payment_intent.payment_failed"}
        )
    ]
    # Stripe delivers it again, and (the same attempt) under a new event id after the payment
    # is already paid: neither adds a row.
    stripe_delivers.control("POST", f"events/{failed_event.id}/redeliver")
    wait_for_deliveries(stripe_delivers, event_type="payment_intent.payment_failed", count=2)
    raw = failed_event.to_dict()
    raw["id"] = failed_event.id + "late"
    late = json.dumps(raw).encode()
    answer = client.post("/webhooks/stripe", data=late, headers=stripe_headers(late))
    assert answer.status_code == 200
    rows = attempts(app, payment.id)
    assert [a.outcome for a in rows] == ["failed", "succeeded"]


@pytest.mark.parametrize(
    ("card", "reason"),
    [
        ("4000000000000002", "declined"),  # the bank's no
        ("4100000000000019", "rejected_by_psp"),  # Stripe's own: Radar blocked it as too risky
    ],
)
def test_an_expiry_after_a_decline_fails_as_declined_or_rejected(
    app, stripe_delivers, card, reason
):
    merchant, _ = make_merchant(app, "Expiry Shop", "http://127.0.0.1:9/notify")
    payment = registered_payment(app, merchant.id, amount=900)
    pay_session(stripe_delivers, payment.session_id, card=card)
    wait_for_attempts(app, payment.id, 1)
    stripe_client(stripe_delivers).v1.checkout.sessions.expire(payment.session_id)
    stored = wait_for_payment_status(app, payment.id, "FAILED")
    assert (stored.failure_reason, stored.failure_code) == (reason, "expired")


def test_an_expiry_with_no_attempt_fails_as_expired(app, stripe_delivers):
    merchant, _ = make_merchant(app, "Quiet Shop", "http://127.0.0.1:9/notify")
    payment = registered_payment(app, merchant.id, amount=900)
    stripe_client(stripe_delivers).v1.checkout.sessions.expire(payment.session_id)
    stored = wait_for_payment_status(app, payment.id, "FAILED")
    assert stored.failure_reason == "expired"


def test_the_merchant_expiring_a_payment_cancels_it(app, stripe_delivers, client):
    merchant, key = make_merchant(app, "Cancel Shop", "http://127.0.0.1:9/notify")
    payment = registered_payment(app, merchant.id, amount=900)
    answer = client.post(
        f"/api/v1/payments/{payment.public_id}/expire", headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["failure_reason"] == "canceled_by_merchant"


def test_a_failed_sepa_debit_is_declined_by_the_bank_with_its_mandate(app, stripe_delivers):
    merchant, _ = make_merchant(app, "Sepa Shop", "http://127.0.0.1:9/notify")
    payment = registered_payment(app, merchant.id, amount=900)
    pay_session(stripe_delivers, payment.session_id, iban="DE62370400440532013001")
    wait_for_payment_status(app, payment.id, "PENDING")

    def learned():
        with app.app_context():
            learn_payment_methods()
        return (p := load_payment(app, payment.id)).payment_method and p

    pending = wait_until(learned, what="the SEPA payment's method")
    assert pending.method_type == "sepa_debit" and pending.card_last4 == "3001"
    assert pending.payment_method["mandate"].startswith("mandate_")
    stripe_delivers.control("POST", f"checkout/sessions/{payment.session_id}/settle", {})
    stored = wait_for_payment_status(app, payment.id, "FAILED")
    assert stored.failure_reason == "declined"  # the bank's refusal, not Stripe's
    [declined] = wait_for_attempts(app, payment.id, 1)
    assert declined.outcome == "failed" and declined.decline_code == "generic_decline"


def _mandate_lookups(emulator) -> list[int]:
    """The statuses of the emulator's answers to mandate retrieves, oldest first."""
    seen = emulator.control("GET", "requests")["data"]
    return [r["status"] for r in reversed(seen) if r["path"].startswith("/v1/mandates/")]


def test_a_paid_sepa_debit_learns_its_mandate_reference_once_the_psp_answers(
    app, stripe_delivers, tenants, client, client_a
):
    with app.app_context():
        learn_payment_methods()  # the worker's pass before this payment
    payment = registered_payment(app, tenants.a_id, amount=900)
    lose_charge_events(stripe_delivers)
    pay_session(stripe_delivers, payment.session_id, iban="DE89370400440532013000")
    wait_for_payment_status(app, payment.id, "PENDING")
    _move_back(app, payment.id, hours=1)  # so only a held watermark finds it again
    moved_at = load_payment(app, payment.id).updated_at
    # The mandate's retrieve fails: the method is recorded, its reference is not, and the
    # watermark waits where the payment moved.
    fault = {"kind": "http_500", "path": "/v1/mandates", "count": 10}
    stripe_delivers.control("POST", "faults", fault)
    with app.app_context():
        learn_payment_methods()
        assert db.session.get(RollupWatermark, METHOD_WATERMARK).updated_before == moved_at
    method = load_payment(app, payment.id).payment_method
    assert method["mandate"].startswith("mandate_") and method["mandate_reference"] is None
    assert _mandate_lookups(stripe_delivers) == [500]
    stripe_delivers.control("DELETE", "faults")
    lose_charge_events(stripe_delivers)  # still

    with app.app_context():
        assert learn_payment_methods() == 1  # the next pass asks again
    reference = load_payment(app, payment.id).payment_method["mandate_reference"]
    # Paid: the paid attempt is learned; the known reference is not asked for again.
    stripe_delivers.control("POST", f"checkout/sessions/{payment.session_id}/settle", {})
    wait_for_payment_status(app, payment.id, "SUCCESS")
    with app.app_context():
        assert learn_payment_methods() == 1
    assert [a.outcome for a in attempts(app, payment.id)] == ["succeeded"]
    assert _mandate_lookups(stripe_delivers) == [500, 200]
    mandate = stripe_get(stripe_delivers, f"/v1/mandates/{method['mandate']}")
    assert reference == mandate["payment_method_details"]["sepa_debit"]["reference"]

    api = client.get(
        f"/api/v1/payments/{payment.public_id}",
        headers={"Authorization": f"Bearer {tenants.a_key}"},
    ).get_json()["payment_method"]
    assert (api["mandate"], api["mandate_reference"]) == (method["mandate"], reference)
    page = client_a.get(f"/dashboard/payments/{payment.public_id}").get_data(as_text=True)
    assert (
        f"mandate reference <code>{reference}</code> (id <code>{method['mandate']}</code>)" in page
    )
    exported = client_a.get("/dashboard/payments/export.csv").get_data(as_text=True)
    [row] = [
        r for r in csv.DictReader(io.StringIO(exported)) if r["payment_id"] == payment.public_id
    ]
    assert (row["sepa_mandate"], row["sepa_mandate_reference"]) == (method["mandate"], reference)


def test_a_psp_outage_leaves_the_method_for_the_next_run(app, stripe_delivers):
    merchant, _ = make_merchant(app, "Outage Shop", "http://127.0.0.1:9/notify")
    payment = registered_payment(app, merchant.id, amount=700)
    lose_charge_events(stripe_delivers)
    pay_session(stripe_delivers, payment.session_id, card="4242424242424242")
    wait_for_payment_status(app, payment.id, "SUCCESS")
    # Every retry of the SDK answered 500: nothing learned; the next run asks again.
    fault = {"kind": "http_500", "path": "/v1/payment_intents", "count": 10}
    stripe_delivers.control("POST", "faults", fault)
    with app.app_context():
        assert learn_payment_methods() == 0
    assert load_payment(app, payment.id).payment_method is None
    stripe_delivers.control("DELETE", "faults")
    with app.app_context():
        assert learn_payment_methods() == 1
    assert load_payment(app, payment.id).card_last4 == "4242"


def _move_back(app, payment_id: int, hours: float) -> None:
    """As if the payment moved, and the lookup's last pass ran, `hours` earlier."""
    with app.app_context():
        back = timedelta(hours=hours)
        payment = db.session.get(Payment, payment_id)
        payment.updated_at -= back
        mark = db.session.get(RollupWatermark, METHOD_WATERMARK)
        if mark is not None:
            mark.updated_before -= back
        db.session.commit()


def test_a_worker_down_for_hours_still_learns_the_methods_after(app, stripe_delivers):
    merchant, _ = make_merchant(app, "Down Shop", "http://127.0.0.1:9/notify")
    with app.app_context():
        assert learn_payment_methods() == 0  # its last pass before it went down
    payment = registered_payment(app, merchant.id, amount=900)
    lose_charge_events(stripe_delivers)
    pay_session(stripe_delivers, payment.session_id, card="4242424242424242")
    wait_for_payment_status(app, payment.id, "SUCCESS")
    _move_back(app, payment.id, hours=3)  # paid three hours ago; no pass since
    with app.app_context():
        assert learn_payment_methods() == 1
    assert load_payment(app, payment.id).card_last4 == "4242"


def test_a_long_psp_outage_holds_the_lookup_back_until_it_ends(app, stripe_delivers):
    merchant, _ = make_merchant(app, "Long Outage Shop", "http://127.0.0.1:9/notify")
    payment = registered_payment(app, merchant.id, amount=800)
    lose_charge_events(stripe_delivers)
    pay_session(stripe_delivers, payment.session_id, card="4242424242424242")
    wait_for_payment_status(app, payment.id, "SUCCESS")
    stripe_delivers.control(
        "POST", "faults", {"kind": "http_500", "path": "/v1/payment_intents", "count": 10}
    )
    with app.app_context():
        assert learn_payment_methods() == 0
        mark = db.session.get(RollupWatermark, METHOD_WATERMARK)
        moved_at = db.session.get(Payment, payment.id).updated_at
        assert mark.updated_before == moved_at  # held where the failed lookup is
    stripe_delivers.control("DELETE", "faults")
    _move_back(app, payment.id, hours=2)  # the outage lasted two hours
    with app.app_context():
        assert learn_payment_methods() == 1
        assert db.session.get(RollupWatermark, METHOD_WATERMARK).updated_before > moved_at


def test_leaving_after_a_decline_is_canceled_by_the_shopper(app, stripe_delivers, client):
    merchant, _ = make_merchant(app, "Left Shop", "http://127.0.0.1:9/notify")
    payment = registered_payment(app, merchant.id, amount=900)
    pay_session(stripe_delivers, payment.session_id, card="4000000000000002")
    wait_for_attempts(app, payment.id, 1)
    assert client.get(f"/checkout/cancel/{payment.public_id}").status_code == 303
    stripe_client(stripe_delivers).v1.checkout.sessions.expire(payment.session_id)
    stored = wait_for_payment_status(app, payment.id, "FAILED")
    assert stored.failure_reason == "canceled_by_shopper"


def test_coming_back_and_being_declined_after_leaving_is_declined(app, stripe_delivers, client):
    merchant, _ = make_merchant(app, "Back Shop", "http://127.0.0.1:9/notify")
    payment = registered_payment(app, merchant.id, amount=900)
    assert client.get(f"/checkout/cancel/{payment.public_id}").status_code == 303
    # Stripe dates the decline in whole seconds: the shopper comes back a little later.
    stripe_delivers.control("POST", "clock/advance", {"seconds": 5})
    pay_session(stripe_delivers, payment.session_id, card="4000000000000002")
    wait_for_attempts(app, payment.id, 1)
    stripe_client(stripe_delivers).v1.checkout.sessions.expire(payment.session_id)
    stored = wait_for_payment_status(app, payment.id, "FAILED")
    assert stored.failure_reason == "declined"


def test_a_shopper_who_left_and_came_back_to_pay_is_paid(app, stripe_delivers, client):
    merchant, _ = make_merchant(app, "Return Shop", "http://127.0.0.1:9/notify")
    payment = registered_payment(app, merchant.id, amount=900)
    assert client.get(f"/checkout/cancel/{payment.public_id}").status_code == 303
    pay_session(stripe_delivers, payment.session_id, card="4242424242424242")
    stored = wait_for_payment_status(app, payment.id, "SUCCESS")
    assert stored.failure_reason is None
