"""The first payment decides an incomplete subscription: a delayed method (SEPA) leaves it
incomplete until the money settles; settled it is active, failed it is cancelled. And two
copies of one invoice processed at the same moment record one renewal (the row lock and the
invoice's charge key). A checkout completed in a transaction whose snapshot predates the
subscription's commit still names it and activates it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Notification
from app.psp.stripe_adapter import event_from_stripe
from app.psp_events.intake import process_event
from tests.snapshot import behind_an_older_snapshot
from tests.subscriptions.conftest import (
    TIMEOUT,
    bill_next_period,
    payments_of,
    renewal_invoice_event,
    subscription_row,
    wait_for_payments,
)
from tests.support.concurrency import at_once
from tests.support.factories import FINAL_NEWS, new_reference, registered_payment
from tests.support.psp import pay_session, stripe_get, wait_for_deliveries
from tests.support.waiting import wait_until


def new_first_payment(app, merchant_id: int, *, prefix: str, interval: str = "month") -> tuple:
    """A RECC payment created through the payment core: (payment id, checkout session id)."""
    payment = registered_payment(
        app,
        merchant_id,
        merchant_reference=new_reference(prefix),
        payment_type="RECC",
        interval=interval,
    )
    return payment.id, payment.session_id


def psp_event(emulator, event_type: str, object_id: str) -> dict:
    """The emulator's one event of `event_type` about the object `object_id`."""
    [event] = [
        e
        for e in stripe_get(emulator, "/v1/events", type=event_type)["data"]
        if e["data"]["object"]["id"] == object_id
    ]
    return event


def paid_unheard(app, emulator, merchant_id: int, *, prefix: str) -> tuple[int, dict]:
    """A daily RECC payment paid at the emulator with its webhooks held back: (payment id, the
    checkout.session.completed event PayBridge has not heard)."""
    payment_id, session_id = new_first_payment(app, merchant_id, prefix=prefix, interval="day")
    emulator.control("POST", "deliveries/pause")
    pay_session(emulator, session_id)
    return payment_id, psp_event(emulator, "checkout.session.completed", session_id)


def billed_unheard(app, emulator, merchant_id: int, *, prefix: str) -> tuple[int, dict, dict]:
    """`paid_unheard`, with the clock moved on to bill the first renewal: (payment id, the
    checkout.session.completed event and the renewal's invoice.paid, both unheard)."""
    payment_id, completed = paid_unheard(app, emulator, merchant_id, prefix=prefix)
    psp_subscription_id = completed["data"]["object"]["subscription"]
    psp_sub = stripe_get(emulator, f"/v1/subscriptions/{psp_subscription_id}")
    period_end = psp_sub["items"]["data"][0]["current_period_end"]
    now = emulator.control("GET", "clock")["now"]
    emulator.control("POST", "clock/advance", {"seconds": max(1, period_end - now + 1)})
    return payment_id, completed, renewal_invoice_event(emulator, psp_subscription_id)


def parsed(raw: dict):
    return event_from_stripe(raw)


@pytest.mark.parametrize(
    ("settle", "payment_status", "sub_status"),
    [("succeeded", "SUCCESS", "active"), ("failed", "FAILED", "cancelled")],
)
def test_a_delayed_first_payment_keeps_it_incomplete_until_it_settles(
    app, make_merchant, stripe_delivers, settle, payment_status, sub_status
):
    merchant, _ = make_merchant()
    payment_id, session_id = new_first_payment(app, merchant.id, prefix="sepa")
    pay_session(stripe_delivers, session_id, iban="DE89370400440532013000")
    wait_until(
        lambda: (
            payments_of(app, payment_id)[0]["status"] == "PENDING"
            and (subscription_row(app, payment_id) or {}).get("status") == "incomplete"
        ),
        what="PENDING payment, incomplete subscription",
        timeout=TIMEOUT,
    )
    wait_for_deliveries(stripe_delivers, timeout=TIMEOUT)
    stripe_delivers.control("POST", f"checkout/sessions/{session_id}/settle", {"outcome": settle})
    wait_until(
        lambda: (
            payments_of(app, payment_id)[0]["status"] == payment_status
            and subscription_row(app, payment_id)["status"] == sub_status
        ),
        what=f"{payment_status} payment, {sub_status} subscription",
        timeout=TIMEOUT,
    )
    wait_for_deliveries(stripe_delivers, timeout=TIMEOUT)
    assert subscription_row(app, payment_id)["status"] == sub_status
    assert len(payments_of(app, payment_id)) == 1


def test_two_copies_of_one_invoice_at_once_record_one_renewal(
    app, make_merchant, stripe_delivers, buy_subscription
):
    merchant, _ = make_merchant()
    first_id, sub = buy_subscription(merchant.id)
    stripe_delivers.control("POST", "deliveries/pause")
    bill_next_period(stripe_delivers, sub)
    event = renewal_invoice_event(stripe_delivers, sub["psp_subscription_id"])
    copies = [dict(event, id=f"{event['id']}_{n}") for n in range(4)]

    def deliver(raw: dict) -> str:
        with app.app_context():
            outcome = process_event(event_from_stripe(raw)).outcome
            db.session.remove()
            return outcome

    outcomes = at_once([lambda raw=raw: deliver(raw) for raw in copies], timeout=30)
    assert sorted(outcomes) == ["applied", "ignored", "ignored", "ignored"]
    rows = wait_for_payments(app, first_id, 2)
    assert [r["status"] for r in rows] == ["SUCCESS", "SUCCESS"]
    stripe_delivers.control("POST", "deliveries/resume")
    wait_for_deliveries(stripe_delivers, timeout=TIMEOUT)
    assert len(payments_of(app, first_id)) == 2


def test_a_checkout_completed_behind_an_older_snapshot_names_the_subscription_committed_since(
    app, make_merchant, stripe_delivers
):
    # The race CI once met: customer.subscription.created records the subscription while the
    # checkout.session.completed request has already read (its snapshot is older), then waits
    # for the payment's lock. Under the lock it sees the PSP id; the snapshot misses the row.
    merchant, _ = make_merchant()
    payment_id, completed = paid_unheard(app, stripe_delivers, merchant.id, prefix="race")
    psp_subscription_id = completed["data"]["object"]["subscription"]
    created = psp_event(stripe_delivers, "customer.subscription.created", psp_subscription_id)

    def recorded() -> None:
        assert process_event(parsed(created)).outcome == "applied"

    applied = behind_an_older_snapshot(app, recorded, lambda: process_event(parsed(completed)))
    assert applied.outcome == "applied"

    sub = subscription_row(app, payment_id)
    assert (sub["psp_subscription_id"], sub["status"]) == (psp_subscription_id, "active")
    with app.app_context():
        [notification] = db.session.execute(
            select(Notification).where(Notification.payment_id == payment_id, FINAL_NEWS)
        ).scalars()
        data = notification.payload["data"]
        db.session.remove()
    assert (notification.event_type, data["status"]) == ("payment.succeeded", "SUCCESS")
    assert (data["subscription_id"], data["psp_subscription_id"]) == (
        sub["public_id"],
        psp_subscription_id,
    )
    stripe_delivers.control("POST", "deliveries/resume")
    wait_for_deliveries(stripe_delivers, timeout=TIMEOUT)
    assert payments_of(app, payment_id)[0]["status"] == "SUCCESS"


def test_a_cancel_committed_behind_a_settling_checkout_is_not_undone(
    app, make_merchant, stripe_delivers
):
    # An incomplete subscription (SEPA still settling) is cancelled while the settlement's
    # webhook, its snapshot already taken, waits for the payment's lock. The snapshot still says
    # incomplete; activating from it would bring the cancelled subscription back.
    from app.subscriptions.service import cancel_subscription

    merchant, _ = make_merchant()
    payment_id, session_id = new_first_payment(app, merchant.id, prefix="sepa")
    pay_session(stripe_delivers, session_id, iban="DE89370400440532013000")
    sub = wait_until(
        lambda: (s := subscription_row(app, payment_id)) and s["status"] == "incomplete" and s,
        what="incomplete subscription",
        timeout=TIMEOUT,
    )
    wait_for_deliveries(stripe_delivers, timeout=TIMEOUT)
    stripe_delivers.control("POST", "deliveries/pause")
    stripe_delivers.control(
        "POST", f"checkout/sessions/{session_id}/settle", {"outcome": "succeeded"}
    )
    settled = psp_event(stripe_delivers, "checkout.session.async_payment_succeeded", session_id)

    def cancelled() -> None:  # the merchant's cancel
        assert cancel_subscription(sub["id"], at_period_end=False).status == "cancelled"

    applied = behind_an_older_snapshot(app, cancelled, lambda: process_event(parsed(settled)))
    assert applied.outcome == "applied"
    assert payments_of(app, payment_id)[0]["status"] == "SUCCESS"
    assert subscription_row(app, payment_id)["status"] == "cancelled"
    stripe_delivers.control("POST", "deliveries/resume")
    wait_for_deliveries(stripe_delivers, timeout=TIMEOUT)
    assert subscription_row(app, payment_id)["status"] == "cancelled"


def test_a_renewal_behind_an_older_snapshot_names_the_subscription_committed_since(
    app, make_merchant, stripe_delivers
):
    # The checkout's own events arrive only as the first renewal is billed: the checkout's
    # completion records the subscription while the renewal's invoice.paid, its snapshot
    # already taken, waits. The renewal's notification must still name the subscription.
    merchant, _ = make_merchant()
    payment_id, completed, renewal = billed_unheard(
        app, stripe_delivers, merchant.id, prefix="late"
    )
    psp_subscription_id = completed["data"]["object"]["subscription"]

    def checkout_completed() -> None:
        assert process_event(parsed(completed)).outcome == "applied"

    applied = behind_an_older_snapshot(
        app, checkout_completed, lambda: process_event(parsed(renewal))
    )
    assert applied.outcome == "applied", applied.detail

    sub = subscription_row(app, payment_id)
    rows = payments_of(app, payment_id)
    assert [r["status"] for r in rows] == ["SUCCESS", "SUCCESS"]
    with app.app_context():
        [notification] = db.session.execute(
            select(Notification).where(Notification.payment_id == rows[1]["id"], FINAL_NEWS)
        ).scalars()
        data = notification.payload["data"]
        db.session.remove()
    assert (data["subscription_id"], data["psp_subscription_id"]) == (
        sub["public_id"],
        psp_subscription_id,
    )
    assert data["parent_payment_id"] == rows[0]["public_id"]
    stripe_delivers.control("POST", "deliveries/resume")
    wait_for_deliveries(stripe_delivers, timeout=TIMEOUT)
    assert len(payments_of(app, payment_id)) == 2


def test_a_renewal_behind_an_older_snapshot_is_made_from_the_locked_first_payment(
    app, make_merchant, stripe_delivers, monkeypatch
):
    # Same race: locate() locks the first payment, which the checkout's completion has made
    # SUCCESS with the PSP subscription id since the snapshot. The renewal is made from that
    # locked copy, not from the snapshot's (INITIATED, no PSP subscription id).
    from app.subscriptions import service

    merchant, _ = make_merchant()
    payment_id, completed, renewal = billed_unheard(
        app, stripe_delivers, merchant.id, prefix="late"
    )
    made_from: list[tuple] = []
    new_renewal = service._new_renewal

    def spied(subscription, first, *args, **kwargs):
        made_from.append((first.id, first.status, first.psp_subscription_id))
        return new_renewal(subscription, first, *args, **kwargs)

    monkeypatch.setattr(service, "_new_renewal", spied)

    def checkout_completed() -> None:
        assert process_event(parsed(completed)).outcome == "applied"

    applied = behind_an_older_snapshot(
        app, checkout_completed, lambda: process_event(parsed(renewal))
    )
    assert applied.outcome == "applied", applied.detail
    psp_subscription_id = completed["data"]["object"]["subscription"]
    assert made_from == [(payment_id, "SUCCESS", psp_subscription_id)]
    stripe_delivers.control("POST", "deliveries/resume")
    wait_for_deliveries(stripe_delivers, timeout=TIMEOUT)
    assert len(payments_of(app, payment_id)) == 2
