"""A subscription's life against the real emulator: bought on its checkout, renewed by moving
its clock (each renewal a payment of its own, notified signed), a failed renewal, cancelled
now and at period end. Webhooks travel from the emulator to the live server over HTTP."""

from __future__ import annotations

from standardwebhooks import Webhook

from app.extensions import db
from app.models import iso
from app.tasks.subscriptions import learn_renewal_payment_intents
from tests.subscriptions.conftest import (
    TIMEOUT,
    bill_next_period,
    payments_of,
    renew,
    subscription_row,
    wait_for_payments,
)
from tests.support.api import auth_headers
from tests.support.delivery import Deliveries, deliver_due_notifications
from tests.support.factories import add_endpoint
from tests.support.psp import stripe_get, wait_for_deliveries
from tests.support.waiting import wait_until

RENEWAL_HISTORY = [
    (None, "CREATED", "webhook"),
    ("CREATED", "INITIATED", "webhook"),
    ("INITIATED", "SUCCESS", "webhook"),
]


def notified(app, receiver, count: int) -> list[dict]:
    """Deliver notifications until the receiver has `count` of them."""
    Deliveries(app).run_until(
        lambda: len(receiver.requests) >= count, what=f"{count} notifications", timeout=TIMEOUT
    )
    return receiver.requests


def test_bought_then_renewed_twice_each_renewal_is_a_notified_payment(
    app, client, make_merchant, receiver, stripe_delivers, buy_subscription
):
    merchant, key = make_merchant(notify_url=receiver.url)
    first_id, sub = buy_subscription(merchant.id, reference="plan-ada")
    [first] = payments_of(app, first_id)
    assert first["psp_subscription_id"] == sub["psp_subscription_id"]
    assert sub["psp_subscription_id"].startswith("sub_")
    assert (sub["amount"], sub["currency"], sub["interval"], sub["interval_count"]) == (
        1500,
        "EUR",
        "day",
        1,
    )
    first_period_end = sub["current_period_end"]

    bill_next_period(stripe_delivers, sub)
    wait_for_payments(app, first_id, 2)
    sub = wait_until(
        lambda: (
            (s := subscription_row(app, first_id))
            and s["current_period_end"] > first_period_end
            and s
        ),
        what="the next period",
        timeout=TIMEOUT,
    )
    rows = renew(app, stripe_delivers, first_id, sub, payments=3)

    assert [r["reference"] for r in rows] == ["plan-ada", "plan-ada-r1", "plan-ada-r2"]
    for renewal in rows[1:]:
        assert renewal["status"] == "SUCCESS"
        assert renewal["payment_type"] == "RECC"
        assert renewal["parent_payment_id"] == first_id
        assert (renewal["amount"], renewal["currency"]) == (1500, "EUR")
        assert renewal["history"] == RENEWAL_HISTORY
        # Not on the renewal row: a lookup through the subscription would find the first charge.
        assert renewal["psp_subscription_id"] is None
    sub = subscription_row(app, first_id)
    assert sub["status"] == "active"

    # Invoice events do not name the charge's payment intent; the worker's periodic subscription
    # upkeep asks the PSP for each.
    with app.app_context():
        assert learn_renewal_payment_intents() == 2
    intents = [r["psp_payment_intent_id"] for r in payments_of(app, first_id)[1:]]
    assert all(i.startswith("pi_") for i in intents) and len(set(intents)) == 2
    for intent in intents:
        pi = stripe_get(stripe_delivers, f"/v1/payment_intents/{intent}")
        assert (pi["status"], pi["amount"]) == ("succeeded", 1500)

    # One signed notification per charge: the checkout and the two renewals, nothing more.
    requests = notified(app, receiver, 3)
    deliver_due_notifications(app)
    assert len(receiver.requests) == 3
    bodies = [Webhook(merchant.signing_secret).verify(r.body, r.headers) for r in requests]
    assert {b["type"] for b in bodies} == {"payment.succeeded"}
    by_id = {b["data"]["id"]: b["data"] for b in bodies}
    assert set(by_id) == {r["public_id"] for r in rows}
    for renewal in rows[1:]:
        data = by_id[renewal["public_id"]]
        assert data["subscription_id"] == sub["public_id"]
        assert data["parent_payment_id"] == rows[0]["public_id"]
        assert data["merchant_reference"] == renewal["reference"]
        assert data["psp_subscription_id"] == sub["psp_subscription_id"]
    assert by_id[rows[0]["public_id"]]["subscription_id"] == sub["public_id"]

    # The API shows the subscription with its three payments, oldest first.
    response = client.get(f"/api/v1/subscriptions/{sub['public_id']}", headers=auth_headers(key))
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "active"
    assert body["first_payment_id"] == rows[0]["public_id"]
    assert body["current_period_end"] == iso(sub["current_period_end"])
    assert [p["id"] for p in body["payments"]] == [r["public_id"] for r in rows]
    assert [p["status"] for p in body["payments"]] == ["SUCCESS"] * 3


def test_failed_renewal_is_a_failed_payment_and_makes_it_past_due_until_paid(
    app, make_merchant, receiver, stripe_delivers, buy_subscription
):
    merchant, _ = make_merchant(notify_url=receiver.url)
    first_id, sub = buy_subscription(merchant.id, reference="plan-bob")
    stripe_delivers.control(
        "POST",
        f"subscriptions/{sub['psp_subscription_id']}/fail_next_renewal",
        {"decline_code": "insufficient_funds"},
    )
    bill_next_period(stripe_delivers, sub)
    rows = wait_for_payments(app, first_id, 2)
    sub = wait_until(
        lambda: (s := subscription_row(app, first_id)) and s["status"] == "past_due" and s,
        what="past_due",
        timeout=TIMEOUT,
    )
    failed = rows[1]
    assert (failed["reference"], failed["status"]) == ("plan-bob-r1", "FAILED")
    assert failed["failure_code"] == "renewal_payment_failed"
    assert failed["history"][-1] == ("INITIATED", "FAILED", "webhook")

    requests = notified(app, receiver, 2)
    bodies = [Webhook(merchant.signing_secret).verify(r.body, r.headers) for r in requests]
    failed_body = next(b for b in bodies if b["data"]["id"] == failed["public_id"])
    assert failed_body["type"] == "payment.failed"
    assert failed_body["data"]["status"] == "FAILED"

    # Stripe's retry of the open invoice pays it: a new successful charge, active again.
    [invoice] = [
        i
        for i in stripe_delivers.control("GET", "deliveries")["data"]
        if i["event_type"] == "invoice.payment_failed"
    ]
    event = stripe_get(stripe_delivers, f"/v1/events/{invoice['event_id']}")
    invoice_id = event["data"]["object"]["id"]
    stripe_delivers.control("POST", f"invoices/{invoice_id}/pay", {"outcome": "succeeded"})
    rows = wait_for_payments(app, first_id, 3)
    wait_until(
        lambda: subscription_row(app, first_id)["status"] == "active",
        what="active after retry",
        timeout=TIMEOUT,
    )
    assert (rows[2]["reference"], rows[2]["status"]) == ("plan-bob-r2", "SUCCESS")
    notified(app, receiver, 3)


def cancel(client, key, sub: dict, *, at_period_end: bool):
    """POST /api/v1/subscriptions/{id}/cancel; the response."""
    return client.post(
        f"/api/v1/subscriptions/{sub['public_id']}/cancel",
        json={"at_period_end": at_period_end},
        headers=auth_headers(key),
    )


def test_cancel_now_ends_it_at_the_psp_and_nothing_more_is_billed(
    app, client, make_merchant, stripe_delivers, buy_subscription
):
    merchant, key = make_merchant()
    first_id, sub = buy_subscription(merchant.id)
    response = cancel(client, key, sub, at_period_end=False)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "cancelled"
    assert body["cancelled_at"] is not None
    psp = stripe_get(stripe_delivers, f"/v1/subscriptions/{sub['psp_subscription_id']}")
    assert psp["status"] == "canceled"

    # The deleted event arrives afterwards and changes nothing; the clock bills nothing.
    bill_next_period(stripe_delivers, sub)
    wait_for_deliveries(stripe_delivers, timeout=TIMEOUT)
    assert len(payments_of(app, first_id)) == 1
    assert subscription_row(app, first_id)["status"] == "cancelled"

    # Cancelling again answers the subscription as it is.
    again = cancel(client, key, sub, at_period_end=True)
    assert again.status_code == 200
    assert again.get_json()["status"] == "cancelled"


def test_cancel_at_period_end_keeps_it_until_then_and_the_psp_ends_it(
    app, client, make_merchant, stripe_delivers, buy_subscription
):
    merchant, key = make_merchant()
    first_id, sub = buy_subscription(merchant.id)
    response = cancel(client, key, sub, at_period_end=True)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["status"], body["cancel_at_period_end"]) == ("active", True)
    assert body["current_period_end"] == iso(sub["current_period_end"])

    bill_next_period(stripe_delivers, sub)
    ended = wait_until(
        lambda: (s := subscription_row(app, first_id)) and s["status"] == "cancelled" and s,
        what="customer.subscription.deleted at period end",
        timeout=TIMEOUT,
    )
    assert ended["ended_at"] is not None
    wait_for_deliveries(stripe_delivers, timeout=TIMEOUT)
    assert len(payments_of(app, first_id)) == 1


def test_an_endpoint_subscribed_to_subscription_events_hears_its_whole_life(
    app, client, make_merchant, receiver, stripe_delivers, buy_subscription
):
    """subscription.created when it starts, .past_due when a renewal fails, .renewed when one
    is paid, .canceled when it ends: to the endpoint that asked, signed with its secret."""
    merchant, key = make_merchant()
    with app.app_context():
        endpoint = add_endpoint(
            merchant.id,
            receiver.url,
            [
                "subscription.created",
                "subscription.renewed",
                "subscription.past_due",
                "subscription.canceled",
            ],
        )
        db.session.commit()
        secret = endpoint.signing_secret
    first_id, sub = buy_subscription(merchant.id, reference="plan-eve")
    stripe_delivers.control(
        "POST",
        f"subscriptions/{sub['psp_subscription_id']}/fail_next_renewal",
        {"decline_code": "insufficient_funds"},
    )
    bill_next_period(stripe_delivers, sub)
    wait_until(
        lambda: subscription_row(app, first_id)["status"] == "past_due",
        what="past_due",
        timeout=TIMEOUT,
    )
    [failed] = [
        i
        for i in stripe_delivers.control("GET", "deliveries")["data"]
        if i["event_type"] == "invoice.payment_failed"
    ]
    event = stripe_get(stripe_delivers, f"/v1/events/{failed['event_id']}")
    stripe_delivers.control(
        "POST", f"invoices/{event['data']['object']['id']}/pay", {"outcome": "succeeded"}
    )
    wait_until(
        lambda: subscription_row(app, first_id)["status"] == "active",
        what="active after retry",
        timeout=TIMEOUT,
    )
    assert cancel(client, key, sub, at_period_end=False).status_code == 200

    bodies = [Webhook(secret).verify(r.body, r.headers) for r in notified(app, receiver, 4)]
    by_type = {b["type"]: b for b in bodies}
    assert sorted(by_type) == [
        "subscription.canceled",
        "subscription.created",
        "subscription.past_due",
        "subscription.renewed",
    ]
    assert len(bodies) == 4  # no payment.* event: the endpoint did not ask for them
    assert {b["data"]["id"] for b in bodies} == {sub["public_id"]}
    assert by_type["subscription.created"]["data"]["status"] == "active"
    assert by_type["subscription.past_due"]["data"]["status"] == "past_due"
    assert by_type["subscription.canceled"]["data"]["status"] == "cancelled"
    # Order per payment: the first payment's news (created, past_due, canceled) in order.
    first_news = [b["type"] for b in bodies if b["type"] != "subscription.renewed"]
    assert first_news == ["subscription.created", "subscription.past_due", "subscription.canceled"]
