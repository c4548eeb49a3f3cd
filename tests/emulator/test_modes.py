"""Test and live mode, as Stripe keeps them apart: the key's mode marks what it creates, the other
mode's key neither retrieves nor lists it, and each webhook endpoint hears only its mode."""

from __future__ import annotations

import json

import pytest
import requests
import stripe

from stripe_emulator.testing import EmulatorError, run_emulator
from tests.support.psp import wait_for_deliveries

from .conftest import SECRET, Receiver, event_type, session_params

LIVE_SECRET = "whsec_live_cli_secret"


@pytest.fixture
def live(emu) -> stripe.StripeClient:
    return stripe.StripeClient(
        emu.live_api_key, base_addresses={"api": emu.url}, max_network_retries=0
    )


@pytest.fixture
def live_receiver():
    r = Receiver(secret=LIVE_SECRET)
    yield r
    r.close()


def paid_session(client, emu, **params) -> stripe.checkout.Session:
    s = client.v1.checkout.sessions.create(params=session_params(**params))
    emu.control("POST", f"checkout/sessions/{s.id}/pay", {"card": "4242424242424242"})
    return client.v1.checkout.sessions.retrieve(s.id, {"expand": ["payment_intent"]})


def test_a_live_key_makes_live_objects_and_a_test_key_test_ones(client, live, emu):
    live_session = paid_session(live, emu)
    test_session = paid_session(client, emu)

    assert live_session.id.startswith("cs_live_") and live_session.livemode is True
    assert test_session.id.startswith("cs_test_") and test_session.livemode is False
    assert live_session.payment_intent.livemode is True
    charge = live.v1.charges.retrieve(live_session.payment_intent.latest_charge)
    assert charge.livemode is True
    price = live.v1.checkout.sessions.line_items.list(live_session.id).data[0].price
    assert price.livemode is True
    # A refund shows no mode (as on Stripe), yet belongs to its charge's.
    refund = live.v1.refunds.create({"payment_intent": live_session.payment_intent.id})
    assert [r.id for r in live.v1.refunds.list().data] == [refund.id]
    assert client.v1.refunds.list().data == []
    live_events = live.v1.events.list({"limit": 100}).data
    assert {e.type for e in live_events} >= {
        "checkout.session.completed", "payment_intent.succeeded", "refund.created",
    }  # fmt: skip
    assert all(e.livemode is True for e in live_events)
    assert all(e.livemode is False for e in client.v1.events.list({"limit": 100}).data)


def test_a_live_subscription_bills_live_invoices(live, emu):
    s = paid_session(live, emu, **subscription_params())
    sub = live.v1.subscriptions.retrieve(s.subscription)
    emu.control("POST", f"subscriptions/{sub.id}/renew")

    invoices = live.v1.invoices.list({"subscription": sub.id, "expand": ["data.payments"]}).data
    assert sub.livemode is True and sub["items"].data[0].price.livemode is True
    assert len(invoices) == 2 and all(i.livemode is True for i in invoices)
    assert all(i.lines.data[0].livemode is True for i in invoices)
    renewal_pi = invoices[0].payments.data[0].payment.payment_intent
    assert live.v1.payment_intents.retrieve(renewal_pi).livemode is True


def subscription_params() -> dict:
    return {
        "mode": "subscription",
        "line_items": [
            {
                "price_data": {
                    "currency": "usd",
                    "unit_amount": 999,
                    "product_data": {"name": "Club"},
                    "recurring": {"interval": "month"},
                },
                "quantity": 1,
            }
        ],
    }


def test_the_other_modes_key_does_not_find_an_object_and_says_where_it_is(client, live, emu):
    live_session = paid_session(live, emu)
    test_session = paid_session(client, emu)

    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.checkout.sessions.retrieve(live_session.id)
    assert exc.value.http_status == 404 and exc.value.code == "resource_missing"
    assert exc.value.user_message == (
        f"No such checkout.session: '{live_session.id}'; a similar object exists in live mode, "
        "but a test mode key was used to make this request."
    )
    with pytest.raises(stripe.InvalidRequestError) as exc:
        live.v1.payment_intents.retrieve(test_session.payment_intent.id)
    assert exc.value.http_status == 404 and "exists in test mode, but a live mode key" in str(
        exc.value
    )
    # Nor may it act on it: expire, refund.
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.refunds.create({"payment_intent": live_session.payment_intent.id})
    assert exc.value.http_status == 404
    assert live.v1.charges.retrieve(live_session.payment_intent.latest_charge).refunded is False


def test_lists_show_only_the_keys_mode(client, live, emu):
    live_ids = {paid_session(live, emu).id for _ in range(2)}
    test_ids = {paid_session(client, emu).id for _ in range(2)}

    assert {s.id for s in live.v1.checkout.sessions.list().data} == live_ids
    assert {s.id for s in client.v1.checkout.sessions.list().data} == test_ids
    live_event_sessions = {
        e.data.object.id for e in live.v1.events.list({"type": "checkout.session.completed"}).data
    }
    assert live_event_sessions == live_ids
    # A cursor of the other mode names nothing this key may page from.
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.checkout.sessions.list({"starting_after": next(iter(live_ids))})
    assert exc.value.http_status == 400 and exc.value.code == "resource_missing"


def test_the_same_idempotency_key_in_both_modes_makes_two_objects(client, live, emu):
    options = {"idempotency_key": "order-1"}
    test_session = client.v1.checkout.sessions.create(params=session_params(), options=options)
    live_session = live.v1.checkout.sessions.create(params=session_params(), options=options)
    assert test_session.id != live_session.id and live_session.livemode is True


def test_webhook_endpoints_belong_to_a_mode_and_hear_only_its_events(
    client, live, emu, receiver, live_receiver
):
    endpoint = live.v1.webhook_endpoints.create(
        {"url": live_receiver.url, "enabled_events": ["*"], "secret": LIVE_SECRET}
    )
    assert endpoint.livemode is True and endpoint.secret.startswith("whsec_")
    assert [e.id for e in client.v1.webhook_endpoints.list().data if e.id == endpoint.id] == []
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.webhook_endpoints.retrieve(endpoint.id)

    live_session = paid_session(live, emu)
    test_session = paid_session(client, emu)
    wait_for_deliveries(emu, event_type="checkout.session.completed", count=2)

    def completed(r: Receiver) -> set[str]:
        return {
            json.loads(x["body"])["data"]["object"]["id"]
            for x in r.requests
            if event_type(x) == "checkout.session.completed" and x["status"] == 200
        }

    # The CLI's test endpoint (SECRET) hears the test session only, the live one the live.
    assert completed(receiver) == {test_session.id}
    assert completed(live_receiver) == {live_session.id}
    bodies = [json.loads(x["body"]) for x in live_receiver.requests]
    assert bodies and all(b["livemode"] is True for b in bodies)


def test_cli_live_webhooks_are_signed_with_their_own_secret(live_receiver):
    test_receiver = Receiver(secret=SECRET)
    try:
        with run_emulator(
            webhooks=[(test_receiver.url, SECRET)],
            live_webhooks=[(live_receiver.url, LIVE_SECRET)],
        ) as emu:
            live = stripe.StripeClient(emu.live_api_key, base_addresses={"api": emu.url})
            s = paid_session(live, emu)
            found = live_receiver.wait_for(lambda r: event_type(r) == "checkout.session.completed")
            assert found[0]["status"] == 200  # it verified with LIVE_SECRET
            assert json.loads(found[0]["body"])["data"]["object"]["id"] == s.id
            assert test_receiver.requests == []
            emu.control("POST", "reset")  # the CLI's endpoints survive a reset, mode and all
            endpoints = live.v1.webhook_endpoints.list().data
            assert [(e.url, e.livemode) for e in endpoints] == [(live_receiver.url, True)]
    finally:
        test_receiver.close()


def test_control_routes_and_the_hosted_page_serve_both_modes(live, emu):
    s = live.v1.checkout.sessions.create(params=session_params())
    page = requests.get(f"{emu.url}/c/pay/{s.id}", timeout=10)
    assert page.status_code == 200 and "Widget" in page.text
    paid = emu.control("POST", f"checkout/sessions/{s.id}/pay", {"card": "4242424242424242"})
    assert paid["session"]["status"] == "complete" and paid["session"]["livemode"] is True
    made = emu.control(
        "POST",
        "checkout/sessions",
        {"sessions": ["mode=payment&success_url=https://a.test/&" + LINE], "livemode": True},
    )
    assert made["results"][0]["session"]["livemode"] is True
    added = emu.control(
        "POST", "webhook_endpoints", {"url": "https://a.test/hook", "livemode": True}
    )
    assert [e.id for e in live.v1.webhook_endpoints.list().data] == [added["id"]]
    with pytest.raises(EmulatorError) as exc:
        emu.control("POST", "webhook_endpoints", {"url": "https://a.test/", "livemode": "yes"})
    assert exc.value.status == 400 and exc.value.body["error"]["param"] == "livemode"


LINE = (
    "line_items[0][price_data][currency]=usd&line_items[0][price_data][unit_amount]=100&"
    "line_items[0][price_data][product_data][name]=X&line_items[0][quantity]=1"
)


def test_balance_tells_a_keys_mode_and_unknown_keys_are_refused(client, live, emu):
    assert live.v1.balance.retrieve().livemode is True
    assert client.v1.balance.retrieve().livemode is False
    for key in ("rk_live_restricted", "rk_test_restricted"):
        answer = requests.get(
            f"{emu.url}/v1/balance", headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
        assert answer.json()["livemode"] is key.startswith("rk_live_")
    publishable = stripe.StripeClient("pk_live_nope", base_addresses={"api": emu.url})
    with pytest.raises(stripe.AuthenticationError):
        publishable.v1.balance.retrieve()


def test_the_request_log_shows_each_calls_mode_and_stripe_version(client, live, emu):
    live.v1.balance.retrieve(options={"stripe_version": "2026-10-28.endive"})
    client.v1.checkout.sessions.create(params=session_params(), options={"idempotency_key": "k-1"})
    newest, older = emu.control("GET", "requests")["data"][:2]
    assert newest["method"] == "POST" and newest["path"] == "/v1/checkout/sessions"
    assert newest["livemode"] is False and newest["idempotency_key"] == "k-1"
    assert newest["status"] == 200 and newest["stripe_version"]
    assert older == {
        "method": "GET", "path": "/v1/balance", "livemode": True,
        "stripe_version": "2026-10-28.endive", "idempotency_key": None, "status": 200,
    }  # fmt: skip
    emu.control("POST", "reset")
    assert emu.control("GET", "requests")["data"] == []
