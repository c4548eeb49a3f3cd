"""Refunds made at the PSP, not through PayBridge (Stripe's dashboard, another tool), and the
charge.refunded event as current API versions send it: its charge carries the refunded total,
not the refunds. Against MariaDB and the emulator over HTTP; never lost, never counted twice."""

from __future__ import annotations

from datetime import timedelta

from app.extensions import db
from app.models import Notification, Payment, PspEvent, Refund, utcnow
from app.psp import get_provider
from app.psp_events.intake import process_event
from tests.support.api import auth_headers, post_refund
from tests.support.concurrency import at_once
from tests.support.factories import FINAL_NEWS
from tests.support.psp import stripe_post
from tests.support.rows import get_row, get_rows
from tests.support.waiting import wait_until


def refund_at_the_psp(emulator, payment_intent_id: str, amount: int) -> dict:
    """A refund made at the PSP directly, as in its dashboard: no PayBridge metadata."""
    response = stripe_post(
        emulator, "/v1/refunds", {"payment_intent": payment_intent_id, "amount": amount}
    )
    assert response.status_code == 200, response.text
    return response.json()


def refunds_of(app, pay_id: str) -> list[Refund]:
    return get_rows(app, Refund, Refund.payment.has(public_id=pay_id))


def psp_events(app, event_type: str, since) -> list:
    """The PSP's events of this type, as PayBridge's adapter parses them, oldest first."""
    with app.app_context():
        return list(reversed(list(get_provider().list_events([event_type], since))))


def refund_created(app, since, psp_refund_id: str):
    """The PSP's refund.created event of this refund, parsed."""
    [event] = [
        e for e in psp_events(app, "refund.created", since) if e.refunds[0].id == psp_refund_id
    ]
    return event


def test_a_refund_made_in_the_psps_dashboard_is_recorded_once_and_its_client_told(
    app, client, make_merchant, paid_payment, stripe_delivers
):
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id, amount=5000).public_id
    pi = get_row(app, Payment, public_id=pay_id).psp_payment_intent_id

    made = refund_at_the_psp(stripe_delivers, pi, 700)

    def recorded():
        rows = refunds_of(app, pay_id)
        return rows if rows and rows[0].status == "succeeded" else None

    [refund] = wait_until(recorded, timeout=15, what="the outside refund recorded")
    assert (refund.psp_refund_id, refund.amount, refund.source) == (made["id"], 700, "psp")
    # Both of its events (refund.created, charge.refunded) are in; still one refund, once.
    wait_until(
        lambda: (
            {
                e.event_type
                for e in get_rows(app, PspEvent, PspEvent.payment_id == refund.payment_id)
                if e.outcome is not None
            }
            >= {"refund.created", "charge.refunded"}
        ),
        timeout=15,
        what="both refund events stored",
    )
    assert len(refunds_of(app, pay_id)) == 1
    assert get_row(app, Payment, public_id=pay_id).refunded_amount == 700
    seen = client.get(f"/api/v1/payments/{pay_id}", headers=auth_headers(key)).get_json()
    assert [(r["psp_refund_id"], r["source"], r["status"]) for r in seen["refunds"]] == [
        (made["id"], "psp", "succeeded")
    ]
    told = get_rows(app, Notification, Notification.payment.has(public_id=pay_id), FINAL_NEWS)
    assert [n.event_type for n in told] == ["payment.succeeded", "refund.succeeded"]
    # What remains refundable through PayBridge counts it.
    rest = post_refund(client, key, pay_id)
    assert rest.status_code == 201 and rest.get_json()["amount"] == 4300
    assert get_row(app, Payment, public_id=pay_id).refunded_amount == 5000


def test_charge_refunded_alone_brings_the_refund_its_own_event_never_delivered(
    app, make_merchant, paid_payment, emu
):
    """Only the charge event arrives (the refund's own event lost): its total is more than
    PayBridge knows, so PayBridge lists the intent's refunds at the PSP and records them; the
    refund event arriving late changes nothing."""
    merchant, _ = make_merchant()
    since = utcnow() - timedelta(minutes=5)
    pay_id = paid_payment(merchant.id, amount=5000).public_id
    pi = get_row(app, Payment, public_id=pay_id).psp_payment_intent_id
    made = refund_at_the_psp(emu, pi, 1200)

    [charge_event] = [e for e in psp_events(app, "charge.refunded", since) if e.charge]
    assert charge_event.refunds == ()  # the current shape: a total, no list
    assert (charge_event.charge.payment_intent_id, charge_event.charge.amount_refunded) == (
        pi,
        1200,
    )
    with app.app_context():
        stored = process_event(charge_event, received_via="webhook")
    assert stored.outcome == "applied" and "listed at the PSP" in stored.detail

    [refund] = refunds_of(app, pay_id)
    assert (refund.psp_refund_id, refund.status, refund.amount) == (made["id"], "succeeded", 1200)
    assert get_row(app, Payment, public_id=pay_id).refunded_amount == 1200

    created = refund_created(app, since, made["id"])
    with app.app_context():
        late = process_event(created, received_via="webhook")
    assert late.outcome == "ignored"
    assert len(refunds_of(app, pay_id)) == 1
    assert get_row(app, Payment, public_id=pay_id).refunded_amount == 1200


def test_a_charge_whose_refunds_are_all_known_lists_nothing(
    app, client, make_merchant, paid_payment, emu
):
    merchant, key = make_merchant()
    since = utcnow() - timedelta(minutes=5)
    pay_id = paid_payment(merchant.id, amount=5000).public_id
    assert post_refund(client, key, pay_id, {"amount": 900}).status_code == 201

    [charge_event] = psp_events(app, "charge.refunded", since)
    with app.app_context():
        stored = process_event(charge_event, received_via="webhook")

    assert stored.outcome == "ignored" and "900 refunded are known" in stored.detail
    assert len(refunds_of(app, pay_id)) == 1


def test_every_report_of_one_outside_refund_at_once_records_it_once(
    app, make_merchant, paid_payment, emu
):
    """refund.created and the intent's listing (what charge.refunded triggers) race: each
    takes the payment's lock first, so the second finds the first's row."""
    from app.refunds.psp_events import learn_intent_refunds

    merchant, _ = make_merchant()
    since = utcnow() - timedelta(minutes=5)
    pay_id = paid_payment(merchant.id, amount=5000).public_id
    pi = get_row(app, Payment, public_id=pay_id).psp_payment_intent_id
    made = refund_at_the_psp(emu, pi, 300)
    created = refund_created(app, since, made["id"])

    def deliver():
        with app.app_context():
            return process_event(created, received_via="webhook").outcome

    def listing():
        with app.app_context():
            learn_intent_refunds("stripe", False, pi, via="webhook")
            db.session.remove()
            return "listed"

    outcome, *_ = at_once([deliver, listing, listing])

    assert outcome in ("applied", "ignored")  # recorded by it, or found recorded by a listing
    assert len(get_rows(app, Refund, Refund.psp_refund_id == made["id"])) == 1
    [refund] = refunds_of(app, pay_id)
    assert (refund.psp_refund_id, refund.amount) == (made["id"], 300)
    assert get_row(app, Payment, public_id=pay_id).refunded_amount == 300


def test_a_refund_of_a_payment_paybridge_does_not_know_is_stored_and_changes_nothing(
    app, make_merchant, paid_payment, emu
):
    """A refund event for another system's charge on the same account: stored, flagged."""
    from tests.support.psp import pay_session, stripe_client

    since = utcnow() - timedelta(minutes=5)
    client = stripe_client(emu)
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "success_url": "https://elsewhere.example.com/ok",
            "line_items": [
                {
                    "price_data": {
                        "currency": "eur",
                        "unit_amount": 1000,
                        "product_data": {"name": "Not PayBridge's"},
                    },
                    "quantity": 1,
                }
            ],
        }
    )
    pay_session(emu, session.id)
    intent = client.v1.checkout.sessions.retrieve(session.id).payment_intent
    made = refund_at_the_psp(emu, intent, 100)
    created = refund_created(app, since, made["id"])

    with app.app_context():
        stored = process_event(created, received_via="webhook")
        assert stored.outcome == "unknown_refund" and intent in stored.detail
        assert db.session.query(Refund).filter_by(psp_refund_id=made["id"]).count() == 0
