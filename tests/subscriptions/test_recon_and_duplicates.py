"""Each invoice charge is recorded once, however it arrives: a duplicate webhook, the same
invoice under another event id, or reconciliation finding a renewal whose webhook was lost
(and the late webhook afterwards). A lost cancellation is taken over by reconciliation too."""

from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.models import Notification, PspEvent, SubscriptionCharge
from app.psp.stripe_adapter import event_from_stripe
from app.psp_events.intake import process_event
from app.reconciliation.service import run_reconciliation
from tests.subscriptions.conftest import (
    TIMEOUT,
    bill_next_period,
    payments_of,
    renew,
    renewal_invoice_event,
    subscription_row,
    wait_for_payments,
)
from tests.support.factories import FINAL_NEWS
from tests.support.psp import stripe_client, wait_for_deliveries
from tests.support.rows import count_rows, read
from tests.support.waiting import wait_until


def test_the_same_invoice_twice_records_one_renewal(
    app, make_merchant, stripe_delivers, buy_subscription
):
    merchant, _ = make_merchant()
    first_id, sub = buy_subscription(merchant.id)
    renew(app, stripe_delivers, first_id, sub)
    event = renewal_invoice_event(stripe_delivers, sub["psp_subscription_id"])

    # Stripe delivers the same event again: stored once, nothing more.
    before = len(stripe_delivers.control("GET", "deliveries")["data"])
    stripe_delivers.control("POST", f"events/{event['id']}/redeliver")
    wait_until(
        lambda: len(stripe_delivers.control("GET", "deliveries")["data"]) > before,
        what="the redelivery",
        timeout=TIMEOUT,
    )
    wait_for_deliveries(stripe_delivers, timeout=TIMEOUT)

    # The same invoice under another event id (the fact arriving another way): the invoice's
    # charge key drops it.
    copy = dict(event, id=event["id"] + "_copy")
    with app.app_context():
        stored = process_event(event_from_stripe(copy))
        assert stored.outcome == PspEvent.OUTCOME_IGNORED
        assert "already recorded" in stored.detail
        db.session.remove()

    rows = payments_of(app, first_id)
    assert [r["status"] for r in rows] == ["SUCCESS", "SUCCESS"]

    invoice_id = event["data"]["object"]["id"]
    assert count_rows(app, SubscriptionCharge, psp_invoice_id=invoice_id) == 1
    assert count_rows(app, Notification, FINAL_NEWS, payment_id=rows[1]["id"]) == 1
    assert count_rows(app, PspEvent, event_id=event["id"]) == 1


def lose_a_renewal(app, make_merchant, emulator, buy_subscription, reference: str):
    """A subscription whose next period is billed while no webhook reaches PayBridge."""
    merchant, _ = make_merchant()
    first_id, sub = buy_subscription(merchant.id, reference=reference)
    wait_for_deliveries(emulator, timeout=TIMEOUT)
    emulator.control("POST", "deliveries/pause")
    bill_next_period(emulator, sub)
    assert len(payments_of(app, first_id)) == 1  # PayBridge heard nothing
    return first_id, sub


def test_reconciliation_records_a_renewal_whose_webhook_was_lost(
    app, make_merchant, stripe_delivers, buy_subscription
):
    first_id, sub = lose_a_renewal(
        app, make_merchant, stripe_delivers, buy_subscription, "plan-lost"
    )

    with app.app_context():
        run = run_reconciliation(trigger="test")
        assert (run.status, run.errors) == ("succeeded", 0), run.error_text
        db.session.remove()
    rows = payments_of(app, first_id)
    assert len(rows) == 2
    renewal = rows[1]
    assert (renewal["reference"], renewal["status"]) == ("plan-lost-r1", "SUCCESS")
    assert [source for _, _, source in renewal["history"]] == ["recon"] * 3
    # The invoice listing names the charge's own intent.
    assert renewal["psp_payment_intent_id"].startswith("pi_")
    # The events pass found the lost invoice.paid and stored it (its invoice carries decimal
    # amounts, which the stored payload keeps as JSON) like a webhook.
    stored = read(
        app,
        lambda: db.session.execute(
            select(PspEvent.received_via, PspEvent.outcome, PspEvent.payment_id)
            .where(PspEvent.event_type == "invoice.paid", PspEvent.received_via == "recon")
        ).all(),
    )  # fmt: skip
    assert [tuple(r) for r in stored] == [("recon", PspEvent.OUTCOME_APPLIED, renewal["id"])]
    assert count_rows(app, Notification, FINAL_NEWS, payment_id=renewal["id"]) == 1
    assert subscription_row(app, first_id)["current_period_end"] > sub["current_period_end"]

    # The webhooks arrive late: the invoice.paid is the event already stored, no second renewal.
    def invoice_events():
        return db.session.execute(
            select(PspEvent.event_id, PspEvent.outcome).where(PspEvent.event_type == "invoice.paid")
        ).all()

    before = read(app, invoice_events)
    stripe_delivers.control("POST", "deliveries/resume")
    wait_for_deliveries(stripe_delivers, timeout=TIMEOUT)
    assert len(payments_of(app, first_id)) == 2
    assert read(app, invoice_events) == before

    # A second run finds nothing more to do.
    with app.app_context():
        again = run_reconciliation(trigger="test")
        assert not [d for d in again.details if d.get("action") == "renewal_recorded"]
        db.session.remove()
    assert len(payments_of(app, first_id)) == 2


def test_the_subscriptions_pass_records_a_lost_renewal_when_the_events_listing_fails(
    app, make_merchant, stripe_delivers, buy_subscription
):
    first_id, _ = lose_a_renewal(
        app, make_merchant, stripe_delivers, buy_subscription, "plan-nolist"
    )
    stripe_delivers.control("POST", "faults", {"kind": "http_500", "path": "/v1/events"})

    with app.app_context():
        run = run_reconciliation(trigger="test")
        # The refused listing fails the run; the passes after it still ran.
        assert run.status == "failed" and "events" in run.error_text
        lines = [d for d in run.details if d.get("action") == "renewal_recorded"]
        db.session.remove()
    rows = payments_of(app, first_id)
    assert [(r["reference"], r["status"]) for r in rows[1:]] == [("plan-nolist-r1", "SUCCESS")]
    assert [line["payment"] for line in lines] == [rows[1]["public_id"]]


def test_reconciliation_takes_over_a_cancellation_whose_webhook_was_lost(
    app, make_merchant, stripe_delivers, buy_subscription
):
    merchant, _ = make_merchant()
    first_id, sub = buy_subscription(merchant.id)
    wait_for_deliveries(stripe_delivers, timeout=TIMEOUT)
    stripe_delivers.control("POST", "deliveries/pause")
    # Cancelled at the PSP directly, behind PayBridge's back.
    stripe_client(stripe_delivers).v1.subscriptions.cancel(sub["psp_subscription_id"])
    assert subscription_row(app, first_id)["status"] == "active"

    with app.app_context():
        run = run_reconciliation(trigger="test")
        assert run.status == "succeeded", run.error_text
        db.session.remove()
    ended = subscription_row(app, first_id)
    assert ended["status"] == "cancelled"
    assert ended["cancelled_at"] is not None
    stripe_delivers.control("POST", "deliveries/resume")


def test_a_dry_run_reports_the_missed_renewal_and_changes_nothing(
    app, make_merchant, stripe_delivers, buy_subscription
):
    merchant, _ = make_merchant()
    first_id, sub = buy_subscription(merchant.id)
    wait_for_deliveries(stripe_delivers, timeout=TIMEOUT)
    stripe_delivers.control("POST", "deliveries/pause")
    bill_next_period(stripe_delivers, sub)
    with app.app_context():
        run = run_reconciliation(trigger="test", dry_run=True)
        planned = [d for d in run.details if d.get("action") == "would_record_renewal"]
        db.session.remove()
    assert len(planned) == 1 and planned[0]["to"] == "SUCCESS"
    assert len(payments_of(app, first_id)) == 1
    stripe_delivers.control("POST", "deliveries/resume")
    wait_for_payments(app, first_id, 2)


def test_invoice_events_of_subscriptions_paybridge_does_not_know_change_nothing(app):
    invoice = {
        "id": "in_foreign",
        "object": "invoice",
        "status": "paid",
        "billing_reason": "subscription_cycle",
        "amount_due": 500,
        "amount_paid": 500,
        "currency": "eur",
        "attempt_count": 1,
        "created": 1_790_000_000,
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"subscription": "sub_foreign", "metadata": {}},
        },
        "lines": {"object": "list", "data": []},
    }
    standalone = dict(invoice, id="in_standalone", parent=None)
    outcomes = []
    with app.app_context():
        for n, obj in enumerate((invoice, standalone)):
            raw = {
                "id": f"evt_foreign_{n}",
                "object": "event",
                "type": "invoice.paid",
                "created": 1_790_000_000,
                "data": {"object": obj},
            }
            stored = process_event(event_from_stripe(raw))
            outcomes.append(stored.outcome)
        assert db.session.scalar(select(func.count()).select_from(SubscriptionCharge)) == 0
        db.session.remove()
    assert outcomes == ["unknown_subscription", "ignored"]
