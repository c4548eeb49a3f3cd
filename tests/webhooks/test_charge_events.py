"""charge.succeeded / charge.pending / charge.failed: how a payment was paid, and its declined
tries, learned from the charge's own event; one attempt row per charge, whatever else tells it."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from app.extensions import db
from app.models import PaymentAttempt, PspEvent
from app.psp_events.intake import handled_event_types
from tests.support.factories import make_merchant, registered_payment
from tests.support.psp import pay_session, wait_for_deliveries
from tests.support.rows import get_row
from tests.support.waiting import wait_for_payment_status, wait_until
from tests.webhooks.helpers import load_payment
from tests.webhooks.test_modes import event_about, payment_of_mode, post_signed


def outcomes(app, payment_id: int) -> dict[str, str]:
    with app.app_context():
        rows = db.session.execute(
            select(PspEvent.event_type, PspEvent.outcome).where(PspEvent.payment_id == payment_id)
        ).all()
        return dict(rows)


def attempt_rows(app, payment_id: int) -> list[tuple]:
    with app.app_context():
        return [
            tuple(r)
            for r in db.session.execute(
                select(PaymentAttempt.outcome, PaymentAttempt.psp_charge_id).where(
                    PaymentAttempt.payment_id == payment_id
                )
            ).all()
        ]


def test_the_charge_events_are_handled_and_subscribed_to(app):
    with app.app_context():
        assert {"charge.succeeded", "charge.pending", "charge.failed"} <= set(handled_event_types())


def test_a_decline_told_by_its_charge_and_its_intent_is_one_attempt(app, stripe_delivers):
    merchant, _ = make_merchant(app, "Charge Shop", "http://127.0.0.1:9/notify")
    payment = registered_payment(app, merchant.id, amount=1500)
    pay_session(stripe_delivers, payment.session_id, card="4000000000009995")
    wait_for_deliveries(stripe_delivers, event_type="payment_intent.payment_failed", count=1)
    [(outcome, charge_id)] = attempt_rows(app, payment.id)
    assert outcome == "failed" and charge_id.startswith("ch_")
    # The charge's event came first (as Stripe sends them) and recorded it.
    assert outcomes(app, payment.id) == {
        "charge.failed": "applied",
        "payment_intent.payment_failed": "ignored",
    }
    attempt = get_row(app, PaymentAttempt, payment_id=payment.id)
    assert (attempt.decline_code, attempt.failure_code, attempt.card_last4) == (
        "insufficient_funds", "card_declined", "9995",
    )  # fmt: skip
    assert load_payment(app, payment.id).status == "INITIATED"


def test_a_sepa_debit_learns_its_method_pending_and_its_paid_attempt_settled(app, stripe_delivers):
    merchant, _ = make_merchant(app, "Debit Shop", "http://127.0.0.1:9/notify")
    payment = registered_payment(app, merchant.id, amount=900)
    pay_session(stripe_delivers, payment.session_id, iban="DE89370400440532013000")
    pending = wait_for_payment_status(app, payment.id, "PENDING")
    # charge.pending came before the checkout event: the method is known, no attempt yet.
    assert pending.method_type == "sepa_debit" and pending.card_last4 == "3000"
    assert pending.payment_method["mandate"].startswith("mandate_")
    assert attempt_rows(app, payment.id) == []
    stripe_delivers.control("POST", f"checkout/sessions/{payment.session_id}/settle", {})
    wait_for_payment_status(app, payment.id, "SUCCESS")
    wait_until(lambda: attempt_rows(app, payment.id), what="the paid attempt")
    [(outcome, _)] = attempt_rows(app, payment.id)
    assert outcome == "succeeded"


def _charge(intent_id: str, metadata: dict, *, livemode: bool = False) -> dict:
    return {
        "id": "ch_" + secrets.token_hex(8),
        "object": "charge",
        "status": "succeeded",
        "created": 1_800_000_000,
        "livemode": livemode,
        "payment_intent": intent_id,
        "metadata": metadata,
        "failure_code": None,
        "failure_message": None,
        "outcome": {"type": "authorized", "reason": None},
        "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}},
    }


def test_a_charge_of_no_known_payment_or_of_the_other_mode_changes_nothing(app, client, merchant):
    unknown = event_about("charge.succeeded", _charge("pi_nobody", {}), livemode=False)
    answer = post_signed(client, unknown, livemode=False)
    assert answer.get_json() == {"received": True, "outcome": "unknown_session"}

    payment = payment_of_mode(app, merchant.id, False)
    claimed = {"paybridge_payment_id": payment.public_id}
    live = event_about(
        "charge.succeeded", _charge("pi_live", claimed, livemode=True), livemode=True
    )
    answer = post_signed(client, live, livemode=True)
    assert answer.get_json() == {"received": True, "outcome": "mode_mismatch"}
    assert load_payment(app, payment.id).payment_method is None
    assert attempt_rows(app, payment.id) == []
