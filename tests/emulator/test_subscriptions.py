"""Subscriptions and invoices through the real stripe SDK: bought by Checkout, renewed by the
emulator clock, failed renewals, cancellation now and at period end, signed webhooks."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import stripe

from stripe_emulator.subscriptions import add_interval
from stripe_emulator.testing import EmulatorError, run_emulator

from .conftest import SECRET, event_type, session_params

PLAN = {
    "price_data": {
        "currency": "usd",
        "unit_amount": 900,
        "product_data": {"name": "Pro plan"},
        "recurring": {"interval": "month", "interval_count": 1},
    },
    "quantity": 1,
}
SETUP_FEE = {
    "price_data": {"currency": "usd", "unit_amount": 500, "product_data": {"name": "Setup"}},
    "quantity": 1,
}


def buy(client, emu, *, items=None, pay=None, **overrides):
    """A paid subscription-mode session; returns (session, subscription)."""
    s = client.v1.checkout.sessions.create(
        params=session_params(mode="subscription", line_items=items or [PLAN], **overrides)
    )
    emu.control("POST", f"checkout/sessions/{s.id}/pay", pay or {"card": "4242424242424242"})
    s = client.v1.checkout.sessions.retrieve(s.id)
    return s, client.v1.subscriptions.retrieve(s.subscription)


def period(sub) -> tuple[int, int]:
    item = sub["items"].data[0]
    return item.current_period_start, item.current_period_end


def advance_past_period_end(client, emu, sub) -> None:
    now = emu.control("GET", "clock")["now"]
    emu.control("POST", "clock/advance", {"seconds": period(sub)[1] - now + 1})


def events(client, type: str, **match) -> list:
    found = client.v1.events.list({"type": type, "limit": 100}).data
    return [e for e in found if all(e.data.object[k] == v for k, v in match.items())]


def delivered(
    receiver, type: str, object_id: str | None = None, where=lambda body: True
) -> list[stripe.Event]:
    """Events of ``type`` (on ``object_id``, matching ``where(body)``) the receiver got, once
    at least one arrived; each verified with the SDK."""

    def wanted(r):
        body = json.loads(r["body"])
        return (
            event_type(r) == type
            and (object_id is None or body["data"]["object"]["id"] == object_id)
            and where(body)
        )

    reqs = receiver.wait_for(wanted)
    return [
        stripe.Webhook.construct_event(r["body"], r["headers"]["Stripe-Signature"], SECRET)
        for r in reqs
    ]


def test_add_interval_keeps_the_anchor_day():
    jan31 = int(datetime(2027, 1, 31, 12, tzinfo=UTC).timestamp())
    assert datetime.fromtimestamp(add_interval(jan31, "month", 1), UTC).date().isoformat() == (
        "2027-02-28"
    )
    assert datetime.fromtimestamp(add_interval(jan31, "month", 2), UTC).day == 31
    assert add_interval(jan31, "week", 2) - jan31 == 14 * 86400
    assert add_interval(jan31, "day", 3) - jan31 == 3 * 86400
    feb29 = int(datetime(2028, 2, 29, tzinfo=UTC).timestamp())
    assert datetime.fromtimestamp(add_interval(feb29, "year", 1), UTC).day == 28


def test_checkout_creates_an_active_subscription_and_a_paid_first_invoice(client, emu, receiver):
    s, sub = buy(
        client, emu, items=[PLAN, SETUP_FEE],
        subscription_data={"metadata": {"paybridge_payment_id": "pay_1"}},
    )  # fmt: skip
    assert sub.id.startswith("sub_") and sub.object == "subscription"
    assert (sub.status, sub.customer, sub.currency) == ("active", s.customer, "usd")
    assert sub.customer.startswith("cus_") and sub.cancel_at_period_end is False
    assert sub.metadata.to_dict() == {"paybridge_payment_id": "pay_1"}
    item = sub["items"].data[0]
    assert len(sub["items"].data) == 1  # the one-time fee is not a subscription item
    assert item.object == "subscription_item" and item.price.unit_amount == 900
    assert item.price.recurring.interval == "month" and item.plan.interval == "month"
    start, end = period(sub)
    assert start == sub.created and end == add_interval(start, "month", 1)
    assert sub.latest_invoice == s.invoice

    inv = client.v1.invoices.retrieve(s.invoice, {"expand": ["payments"]})
    assert inv.id.startswith("in_") and inv.status == "paid"
    assert (inv.amount_due, inv.amount_paid, inv.amount_remaining) == (1400, 1400, 0)
    assert inv.billing_reason == "subscription_create"
    assert inv.subscription == sub.id
    assert inv.parent.subscription_details.subscription == sub.id
    assert inv.parent.subscription_details.metadata.to_dict() == {"paybridge_payment_id": "pay_1"}
    assert inv.customer == sub.customer and inv.status_transitions.paid_at is not None
    lines = client.v1.invoices.line_items.list(inv.id).data
    assert [(ln.amount, ln.parent.type) for ln in lines] == [
        (900, "subscription_item_details"), (500, "invoice_item_details"),
    ]  # fmt: skip
    assert (lines[0].period.start, lines[0].period.end) == (start, end)
    assert lines[0].parent.subscription_item_details.subscription_item == item.id
    pi = client.v1.payment_intents.retrieve(inv.payments.data[0].payment.payment_intent)
    assert (pi.status, pi.amount, pi.customer) == ("succeeded", 1400, sub.customer)
    assert s.payment_intent is None  # as on Stripe: the invoice owns the intent
    assert s.payment_status == "paid"

    created = delivered(receiver, "customer.subscription.created", sub.id)[0]
    assert created.data.object.status == "incomplete"
    assert isinstance(created.data.object, stripe.Subscription)
    paid = delivered(receiver, "invoice.paid", inv.id)[0]
    assert isinstance(paid.data.object, stripe.Invoice)
    assert paid.data.object.billing_reason == "subscription_create"
    activated = delivered(receiver, "customer.subscription.updated", sub.id)[0]
    assert activated.data.object.status == "active"
    assert activated.data.previous_attributes.status == "incomplete"
    delivered(receiver, "checkout.session.completed", s.id)

    expanded = client.v1.checkout.sessions.retrieve(s.id, {"expand": ["subscription", "invoice"]})
    assert expanded.subscription.id == sub.id and expanded.invoice.id == inv.id
    # A subscription payment is refundable like any other.
    refund = client.v1.refunds.create({"payment_intent": pi.id, "amount": 500})
    assert refund.status == "succeeded"


def test_two_renewals_by_clock_advance_bill_two_distinct_paid_invoices(client, emu, receiver):
    s, sub = buy(client, emu)
    first_start, first_end = period(sub)
    advance_past_period_end(client, emu, sub)
    sub = client.v1.subscriptions.retrieve(sub.id)
    second_start, second_end = period(sub)
    assert (second_start, second_end) == (first_end, add_interval(first_start, "month", 2))
    advance_past_period_end(client, emu, sub)
    sub = client.v1.subscriptions.retrieve(sub.id)
    assert period(sub)[0] == second_end and sub.status == "active"

    renewals = events(client, "invoice.paid", billing_reason="subscription_cycle")
    ids = [e.data.object.id for e in renewals]
    assert len(ids) == 2 and len(set(ids)) == 2 and s.invoice not in ids
    invoices = client.v1.invoices.list({"subscription": sub.id}).data
    assert [i.id for i in invoices] == ids + [s.invoice]  # newest first
    newest, older = invoices[0], invoices[1]
    assert newest.id == sub.latest_invoice
    assert (newest.amount_paid, newest.status, newest.billing_reason) == (
        900, "paid", "subscription_cycle",
    )  # fmt: skip
    # Stripe's cycle invoice: period_* is the period just ended; the line is the new one.
    assert (older.period_start, older.period_end) == (first_start, first_end)
    assert (older.lines.data[0].period.start, older.lines.data[0].period.end) == (
        second_start, second_end,
    )  # fmt: skip
    pis = {
        client.v1.invoices.retrieve(i.id, {"expand": ["payments"]}).payments.data[0].payment.
        payment_intent for i in invoices
    }  # fmt: skip
    assert len(pis) == 3

    for invoice_id in [*ids, s.invoice]:  # each signed, verified and of its own invoice
        [got] = delivered(receiver, "invoice.paid", invoice_id)
        assert got.data.object.amount_paid == 900
    # The second renewal replaced the first renewal's invoice (ids are newest first).
    renewed = lambda b: b["data"]["previous_attributes"].get("latest_invoice") == ids[1]  # noqa: E731
    delivered(receiver, "customer.subscription.updated", sub.id, where=renewed)
    since = newest.created
    assert [i.id for i in client.v1.invoices.list({"created": {"gte": since}}).data][0] == newest.id


def test_failed_renewal_makes_the_subscription_past_due_until_paid(client, emu, receiver):
    s, sub = buy(client, emu)
    out = emu.control(
        "POST", f"subscriptions/{sub.id}/fail_next_renewal", {"decline_code": "insufficient_funds"}
    )
    assert out["failing_renewals"] == 1
    advance_past_period_end(client, emu, sub)
    sub = client.v1.subscriptions.retrieve(sub.id, {"expand": ["latest_invoice.payments"]})
    assert sub.status == "past_due"
    inv = sub.latest_invoice
    assert (inv.status, inv.amount_paid, inv.amount_remaining, inv.attempted) == (
        "open", 0, 900, True,
    )  # fmt: skip
    pi = client.v1.payment_intents.retrieve(inv.payments.data[0].payment.payment_intent)
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.decline_code == "insufficient_funds"
    assert client.v1.charges.retrieve(pi.latest_charge).status == "failed"

    failed = delivered(receiver, "invoice.payment_failed", inv.id)[0]
    assert failed.data.object.subscription == sub.id
    assert failed.data.object.billing_reason == "subscription_cycle"
    delivered(
        receiver, "customer.subscription.updated", sub.id,
        where=lambda b: b["data"]["object"]["status"] == "past_due"
        and b["data"]["previous_attributes"]["status"] == "active",
    )  # fmt: skip
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create({"payment_intent": pi.id})

    paid = emu.control("POST", f"invoices/{inv.id}/pay", {})["invoice"]
    assert paid["status"] == "paid" and paid["attempt_count"] == 2
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    delivered(receiver, "invoice.paid", inv.id)
    with pytest.raises(EmulatorError) as exc:
        emu.control("POST", f"invoices/{inv.id}/pay", {})
    assert exc.value.status == 400

    sub = client.v1.subscriptions.retrieve(sub.id)
    advance_past_period_end(client, emu, sub)  # only the one renewal was made to fail
    latest = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert latest.status == "paid"


def test_cancel_now(client, emu, receiver):
    _, sub = buy(client, emu)
    _, other = buy(client, emu)
    cancelled = client.v1.subscriptions.cancel(
        sub.id, {"cancellation_details": {"comment": "moving away", "feedback": "unused"}}
    )
    now = emu.control("GET", "clock")["now"]
    assert (cancelled.status, cancelled.canceled_at, cancelled.ended_at) == ("canceled", now, now)
    assert cancelled.cancellation_details.reason == "cancellation_requested"
    assert cancelled.cancellation_details.feedback == "unused"
    deleted = delivered(receiver, "customer.subscription.deleted", sub.id)[0]
    assert deleted.data.object.status == "canceled" and deleted.request.id is not None

    assert [x.id for x in client.v1.subscriptions.list().data] == [other.id]
    assert [x.id for x in client.v1.subscriptions.list({"status": "canceled"}).data] == [sub.id]
    assert len(client.v1.subscriptions.list({"status": "all"}).data) == 2
    assert [x.id for x in client.v1.subscriptions.list({"customer": other.customer}).data] == [
        other.id
    ]
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.subscriptions.cancel(sub.id)
    assert exc.value.http_status == 400
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": True})
    assert exc.value.http_status == 400

    advance_past_period_end(client, emu, other)
    assert len(client.v1.invoices.list({"subscription": sub.id}).data) == 1  # no more billing
    assert len(client.v1.invoices.list({"subscription": other.id}).data) == 2


def test_cancel_at_period_end_ends_it_when_the_period_ends(client, emu, receiver):
    _, sub = buy(client, emu)
    start, end = period(sub)
    updated = client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": True})
    assert (updated.status, updated.cancel_at_period_end, updated.cancel_at) == (
        "active", True, end,
    )  # fmt: skip
    change = delivered(
        receiver, "customer.subscription.updated", sub.id,
        where=lambda b: "cancel_at_period_end" in b["data"]["previous_attributes"],
    )[0]  # fmt: skip
    assert change.data.previous_attributes.cancel_at_period_end is False
    undone = client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": False})
    assert (undone.cancel_at_period_end, undone.cancel_at, undone.canceled_at) == (
        False, None, None,
    )  # fmt: skip
    client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": True})

    emu.control("POST", "clock/advance", {"seconds": end - emu.control("GET", "clock")["now"] - 5})
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    emu.control("POST", "clock/advance", {"seconds": 10})
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert (ended.status, ended.ended_at) == ("canceled", end)
    deleted = delivered(receiver, "customer.subscription.deleted", sub.id)[0]
    assert deleted.request.id is None  # the clock did it, not an API call
    assert len(client.v1.invoices.list({"subscription": sub.id}).data) == 1  # nothing billed
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": "maybe"})


def test_renew_control_bills_the_next_period_now(client, emu, receiver):
    _, sub = buy(client, emu)
    start, end = period(sub)
    out = emu.control("POST", f"subscriptions/{sub.id}/renew")
    assert out["invoice"]["status"] == "paid" and out["invoice"]["amount_paid"] == 900
    assert out["subscription"]["items"]["data"][0]["current_period_start"] == end
    assert out["subscription"]["latest_invoice"] == out["invoice"]["id"]
    delivered(receiver, "invoice.paid", out["invoice"]["id"])
    emu.control("POST", f"subscriptions/{sub.id}/fail_next_renewal")
    failed = emu.control("POST", f"subscriptions/{sub.id}/renew")
    assert failed["invoice"]["status"] == "open"
    assert failed["subscription"]["status"] == "past_due"
    client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": True})
    ended = emu.control("POST", f"subscriptions/{sub.id}/renew")
    assert ended["invoice"] is None and ended["subscription"]["status"] == "canceled"
    with pytest.raises(EmulatorError) as exc:
        emu.control("POST", f"subscriptions/{sub.id}/renew")
    assert exc.value.status == 400
    with pytest.raises(EmulatorError) as exc:
        emu.control("POST", "subscriptions/sub_missing/renew")
    assert exc.value.status == 404
    for call in (
        lambda: client.v1.subscriptions.retrieve("sub_missing"),
        lambda: client.v1.invoices.retrieve("in_missing"),
        lambda: client.v1.subscriptions.cancel("sub_missing"),
    ):
        with pytest.raises(stripe.InvalidRequestError) as exc:
            call()
        assert (exc.value.http_status, exc.value.code) == (404, "resource_missing")
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.subscriptions.list({"status": "sleeping"})
    assert exc.value.param == "status"


def test_delayed_first_payment_activates_on_success_and_not_on_failure(client, emu, receiver):
    _, ok = buy(client, emu, pay={"iban": "DE89370400440532013000"})
    _, bad = buy(client, emu, pay={"iban": "DE62370400440532013001"})
    assert ok.status == bad.status == "incomplete"
    assert client.v1.invoices.retrieve(ok.latest_invoice).status == "open"
    emu.control("POST", "clock/advance", {"seconds": 5})  # the fixture's --async-delay
    assert client.v1.subscriptions.retrieve(ok.id).status == "active"
    assert client.v1.invoices.retrieve(ok.latest_invoice).status == "paid"
    delivered(receiver, "invoice.paid", ok.latest_invoice)
    assert client.v1.subscriptions.retrieve(bad.id).status == "incomplete"
    delivered(receiver, "invoice.payment_failed", bad.latest_invoice)
    assert client.v1.subscriptions.list({"status": "incomplete"}).data[0].id == bad.id


def test_mixed_intervals_are_refused(client):
    yearly = json.loads(json.dumps(PLAN))
    yearly["price_data"]["recurring"] = {"interval": "year"}
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.checkout.sessions.create(
            params=session_params(mode="subscription", line_items=[PLAN, yearly])
        )
    assert exc.value.param == "line_items[1][price_data][recurring]"


def test_every_fixture_key_is_present_on_refunds_subscriptions_and_invoices(
    client, emu, stripe_fixtures
):
    s, sub = buy(client, emu)
    inv = client.v1.invoices.retrieve(s.invoice)
    pi = client.v1.invoices.retrieve(s.invoice, {"expand": ["payments"]}).payments.data[0]
    refund = client.v1.refunds.create({"payment_intent": pi.payment.payment_intent, "amount": 1})
    item = sub["items"].data[0]
    for name, obj in [
        ("refund", refund),
        ("subscription", sub),
        ("subscription_item", item),
        ("plan", item.plan),
        ("price", item.price),
        ("invoice", inv),
        ("line_item", inv.lines.data[0]),
        ("invoice_payment", pi),
        ("charge", client.v1.charges.retrieve(refund.charge, {"expand": ["refunds"]})),
    ]:
        missing = set(stripe_fixtures[name]) - set(obj.to_dict())
        assert not missing, f"{name} lacks {sorted(missing)}"
    # And what the SDK's own classes declare for the objects PayBridge reads.
    for cls, obj in [(stripe.Refund, refund), (stripe.Subscription, sub)]:
        declared = {k for k in cls.__annotations__ if not k.startswith("_") and k != "OBJECT_NAME"}
        assert not declared - set(obj.to_dict()), cls


def test_db_keeps_subscriptions_invoices_and_refunds_across_restart(tmp_path):
    db = str(tmp_path / "emulator.sqlite3")

    def sdk(emu):
        return stripe.StripeClient(emu.api_key, base_addresses={"api": emu.url})

    with run_emulator(db_path=db) as emu:
        s, sub = buy(sdk(emu), emu)
        emu.control("POST", "faults", {"kind": "refund_pending"})
        pi_id = sdk(emu).v1.invoices.retrieve(s.invoice, {"expand": ["payments"]})
        pending = sdk(emu).v1.refunds.create(
            {"payment_intent": pi_id.payments.data[0].payment.payment_intent, "amount": 100}
        )
    with run_emulator(db_path=db) as emu:
        client = sdk(emu)
        assert client.v1.subscriptions.retrieve(sub.id).status == "active"
        assert client.v1.refunds.retrieve(pending.id).status == "pending"
        emu.control("POST", f"refunds/{pending.id}/succeed")
        renewed = emu.control("POST", f"subscriptions/{sub.id}/renew")["invoice"]
        assert renewed["billing_reason"] == "subscription_cycle"
        assert renewed["number"].endswith("-0002")
        assert [i.id for i in client.v1.invoices.list({"subscription": sub.id}).data] == [
            renewed["id"], s.invoice,
        ]  # fmt: skip
    with run_emulator(db_path=db) as emu:
        assert sdk(emu).v1.refunds.retrieve(pending.id).status == "succeeded"


def test_the_other_modes_data_is_refused(client):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.checkout.sessions.create(
            params=session_params(
                mode="subscription",
                line_items=[PLAN],
                payment_intent_data={"metadata": {"a": "1"}},
            )  # fmt: skip
        )
    assert exc.value.param == "payment_intent_data"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.checkout.sessions.create(
            params=session_params(subscription_data={"metadata": {"a": "1"}})
        )
    assert exc.value.param == "subscription_data"
