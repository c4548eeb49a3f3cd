"""Which payment a dispute event is about: its payment intent's, or (a dispute that names only
its charge) the payment of the charge's payment intent, asked of the PSP; one of no payment is
stored as `unknown_dispute`, which the operator's events page filters by. Against MariaDB and
the emulator over HTTP, with the emulator's own events."""

from __future__ import annotations

import re
from datetime import timedelta

from app.extensions import db
from app.models import Dispute, Payment, PaymentAttempt, PspEvent, utcnow
from app.psp import get_provider
from app.psp.stripe_adapter import event_from_stripe
from app.psp_events.intake import process_event
from tests.disputes.support import open_dispute
from tests.support.rows import get_row, get_rows


def created_event_without_intent(app, opened: dict, **dispute_fields) -> dict:
    """The PSP's charge.dispute.created of `opened`, as Stripe sends a dispute of a charge made
    without a payment intent (its `payment_intent` null)."""
    with app.app_context():
        [event] = [
            e
            for e in get_provider().list_events(
                ["charge.dispute.created"], utcnow() - timedelta(minutes=5)
            )
            if e.dispute and e.dispute.id == opened["id"]
        ]
    raw = dict(event.raw, id=f"{event.id}_no_intent")
    obj = dict(raw["data"]["object"], payment_intent=None, **dispute_fields)
    return dict(raw, data={"object": obj})


def stored(app, event_id: str) -> PspEvent:
    return get_row(app, PspEvent, event_id=event_id)


def test_a_dispute_naming_only_its_charge_is_recorded_on_the_charges_payment(
    app, make_merchant, paid_payment, emu
):
    merchant, _ = make_merchant()
    payment = paid_payment(merchant.id, amount=3100)
    opened = open_dispute(app, emu, payment.public_id)
    raw = created_event_without_intent(app, opened)

    with app.app_context():
        process_event(event_from_stripe(raw))

    [dispute] = get_rows(app, Dispute, Dispute.psp_dispute_id == opened["id"])
    assert (dispute.payment_id, dispute.amount, dispute.psp_charge_id) == (
        get_row(app, Payment, public_id=payment.public_id).id, 3100, opened["charge"],
    )  # fmt: skip
    row = stored(app, raw["id"])
    assert (row.outcome, row.payment_id) == ("applied", dispute.payment_id)


def test_a_dispute_naming_only_a_charge_an_attempt_recorded_is_matched_without_asking_the_psp(
    app, make_merchant, paid_payment, emu
):
    """payment_attempts.psp_charge_id names the charge's payment in one indexed read: the event
    is applied as it is processed. The charge here is one the PSP does not know, so had it been
    asked the event would have stayed unknown."""
    merchant, _ = make_merchant()
    payment = paid_payment(merchant.id, amount=2700)
    opened = open_dispute(app, emu, payment.public_id)
    raw = created_event_without_intent(app, opened, charge="ch_only_in_attempts")
    payment_id = get_row(app, Payment, public_id=payment.public_id).id
    with app.app_context():
        db.session.add(
            PaymentAttempt(
                payment_id=payment_id, outcome="succeeded", psp_charge_id="ch_only_in_attempts"
            )
        )
        db.session.commit()

        handled = process_event(event_from_stripe(raw))

    assert handled.outcome == "applied"
    [dispute] = get_rows(app, Dispute, Dispute.psp_dispute_id == opened["id"])
    assert (dispute.payment_id, dispute.psp_charge_id) == (payment_id, "ch_only_in_attempts")
    row = stored(app, raw["id"])
    assert (row.outcome, row.payment_id) == ("applied", payment_id)


def test_a_dispute_of_no_known_payment_is_stored_unknown_and_the_events_page_filters_it(
    app, make_merchant, paid_payment, emu, client_op
):
    merchant, _ = make_merchant()
    opened = open_dispute(app, emu, paid_payment(merchant.id).public_id)
    # A charge the PSP does not know, and an intent no payment has.
    no_charge = created_event_without_intent(app, opened, id="dp_no_charge", charge="ch_gone")
    other_intent = dict(no_charge, id=f"{no_charge['id']}_pi")
    other_intent["data"] = {
        "object": dict(no_charge["data"]["object"], id="dp_no_pi", payment_intent="pi_elsewhere")
    }

    with app.app_context():
        for raw in (no_charge, other_intent):
            process_event(event_from_stripe(raw))

    for raw in (no_charge, other_intent):
        row = stored(app, raw["id"])
        assert (row.outcome, row.payment_id) == ("unknown_dispute", None), row.detail
    assert get_rows(app, Dispute) == []
    page = client_op.get("/dashboard/events?outcome=unknown_dispute")
    assert page.status_code == 200
    shown = set(re.findall(r"<code>(evt_\w+)</code>", page.get_data(as_text=True)))
    assert shown == {no_charge["id"], other_intent["id"]}
    assert 'value="unknown_dispute"' in page.get_data(as_text=True)
