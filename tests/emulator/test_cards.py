"""Stripe's test cards (CONTRACT §5) behave as documented, without a browser.

The control route and the hosted page share one set of payment rules (``Emulator.pay``); each
card is paid through the control route and posted to the hosted page's form over plain HTTP.
The Chromium tests in test_hosted_page.py cover the page's 4000…0002 and 3-D Secure flows.
"""

from __future__ import annotations

import html

import pytest
import requests

from .conftest import session_params

# number: (code, decline_code, message) as Stripe answers them.
DECLINES = {
    "4000000000009995": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "4000000000009987": ("card_declined", "lost_card", "Your card was declined."),
    "4000000000009979": ("card_declined", "stolen_card", "Your card was declined."),
    "4000000000000069": ("expired_card", "expired_card", "Your card has expired."),
    "4000000000000127": (
        "incorrect_cvc",
        "incorrect_cvc",
        "Your card's security code is incorrect.",
    ),
    "4000000000000119": (
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    "4242424242424241": ("incorrect_number", "incorrect_number", "Your card number is incorrect."),
    # Attaches fine, then the charge is declined.
    "4000000000000341": ("card_declined", "generic_decline", "Your card was declined."),
}


def checkout_events(client, sid: str) -> list[str]:
    return [
        e.type
        for e in client.v1.events.list({"limit": 100}).data
        if e.type.startswith("checkout.session.") and e.data.object.id == sid
    ]


@pytest.mark.parametrize(("number", "expected"), DECLINES.items(), ids=list(DECLINES))
def test_decline_card_by_control_route(client, emu, number, expected):
    s = client.v1.checkout.sessions.create(params=session_params())
    spaced = " ".join(number[i : i + 4] for i in range(0, 16, 4))  # as a customer types it
    result = emu.control("POST", f"checkout/sessions/{s.id}/pay", {"card": spaced})
    assert result["declined"] is True and result["requires_action"] is False
    assert (result["code"], result["decline_code"], result["message"]) == expected
    after = client.v1.checkout.sessions.retrieve(s.id)
    assert (after.status, after.payment_status, after.payment_intent) == ("open", "unpaid", None)
    assert after.url is not None
    assert checkout_events(client, s.id) == []
    # The session stays payable: a good card completes it.
    paid = emu.control("POST", f"checkout/sessions/{s.id}/pay", {"card": "4242424242424242"})
    assert paid["session"]["payment_status"] == "paid"


@pytest.mark.parametrize(("number", "expected"), DECLINES.items(), ids=list(DECLINES))
def test_decline_card_on_the_hosted_page_form(client, emu, number, expected):
    s = client.v1.checkout.sessions.create(params=session_params())
    form = {"method": "card", "email": "ada@example.com", "card_number": number}
    r = requests.post(s.url, data=form, allow_redirects=False, timeout=10)
    assert r.status_code == 402
    assert 'role="alert"' in r.text and expected[2] in html.unescape(r.text)
    assert client.v1.checkout.sessions.retrieve(s.id).status == "open"


def test_three_d_secure_card_4000000000003220(client, emu):
    card = "4000000000003220"
    s = client.v1.checkout.sessions.create(params=session_params())
    pay = f"checkout/sessions/{s.id}/pay"
    asked = emu.control("POST", pay, {"card": card, "three_d_secure": None})
    assert (asked["requires_action"], asked["declined"]) == (True, False)
    assert asked["session"]["status"] == "open"
    denied = emu.control("POST", pay, {"card": card, "three_d_secure": "deny"})
    assert denied["declined"] is True
    assert denied["code"] == "payment_intent_authentication_failure"
    assert client.v1.checkout.sessions.retrieve(s.id).status == "open"
    assert checkout_events(client, s.id) == []
    approved = emu.control("POST", pay, {"card": card, "three_d_secure": "approve"})
    assert approved["declined"] is False
    done = client.v1.checkout.sessions.retrieve(s.id, {"expand": ["payment_intent"]})
    assert (done.status, done.payment_status) == ("complete", "paid")
    assert done.payment_intent.status == "succeeded"
    assert checkout_events(client, s.id) == ["checkout.session.completed"]

    # On the page, the same card stops at the confirm/deny step (plain HTTP, no browser).
    page_session = client.v1.checkout.sessions.create(params=session_params())
    form = {"method": "card", "email": "ada@example.com", "card_number": card}
    r = requests.post(page_session.url, data=form, allow_redirects=False, timeout=10)
    assert r.status_code == 200 and 'id="approve"' in r.text and 'id="deny"' in r.text
    r = requests.post(
        page_session.url, data={**form, "three_d_secure": "approve"}, allow_redirects=False
    )
    assert r.status_code == 303
    assert r.headers["Location"] == f"http://shop.test/success?session_id={page_session.id}"
    assert client.v1.checkout.sessions.retrieve(page_session.id).status == "complete"
