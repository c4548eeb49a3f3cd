"""Stripe's test cards (CONTRACT §5) behave as documented, without a browser.

The control route and the hosted page share one set of payment rules (``Emulator.pay``); each
card is paid through the control route and posted to the hosted page's form over plain HTTP.
The Chromium tests in test_hosted_page.py cover the page's 4000…0002 and 3-D Secure flows.
"""

from __future__ import annotations

import html

import pytest
import requests

from stripe_emulator.testing import EmulatorError

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
    # Radar blocks it (highest risk): to the shopper a decline like any other.
    "4100000000000019": ("card_declined", "fraudulent", "Your card was declined."),
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
    after = client.v1.checkout.sessions.retrieve(s.id, {"expand": ["payment_intent"]})
    assert (after.status, after.payment_status) == ("open", "unpaid")
    assert after.url is not None
    assert checkout_events(client, s.id) == []
    failed = [
        e.data.object
        for e in client.v1.events.list({"type": "payment_intent.payment_failed"}).data
        if after.payment_intent and e.data.object.id == after.payment_intent.id
    ]
    if number == "4242424242424241":  # the page's own number check: Stripe saw no attempt
        assert after.payment_intent is None and failed == []
    else:
        # Stripe's trace of the attempt: the intent's last_payment_error with the payment
        # method, a failed charge, and one payment_intent.payment_failed.
        intent = after.payment_intent
        assert intent.status == "requires_payment_method"
        error = intent.last_payment_error
        assert (error.code, error.decline_code or error.code, error.message) == expected
        assert (error.payment_method.card.brand, error.payment_method.card.last4) == (
            "visa",
            number[-4:],
        )
        charge = client.v1.charges.retrieve(error.charge)
        # As on Stripe: the error's code; the issuer's reason is the outcome's.
        assert (charge.status, charge.paid, charge.failure_code) == ("failed", False, expected[0])
        if charge.outcome.type != "blocked":  # Radar's block gives its own reason
            assert charge.outcome.reason == expected[1]
        assert charge.payment_method_details.card.last4 == number[-4:]
        assert [f.last_payment_error.charge for f in failed] == [charge.id]
    # The session stays payable: a good card completes it, on the same intent.
    paid = emu.control("POST", f"checkout/sessions/{s.id}/pay", {"card": "4242424242424242"})
    assert paid["session"]["payment_status"] == "paid"
    done = client.v1.checkout.sessions.retrieve(s.id, {"expand": ["payment_intent.latest_charge"]})
    if after.payment_intent is not None:
        assert done.payment_intent.id == after.payment_intent.id
    assert done.payment_intent.last_payment_error is None
    assert done.payment_intent.latest_charge.status == "succeeded"
    assert done.payment_intent.latest_charge.payment_method_details.card.last4 == "4242"


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
    denied_at = client.v1.checkout.sessions.retrieve(s.id, {"expand": ["payment_intent"]})
    assert denied_at.status == "open"
    # Authentication failed before any charge: the error names no charge.
    error = denied_at.payment_intent.last_payment_error
    assert error.code == "payment_intent_authentication_failure" and "charge" not in error
    assert checkout_events(client, s.id) == []
    approved = emu.control("POST", pay, {"card": card, "three_d_secure": "approve"})
    assert approved["declined"] is False
    done = client.v1.checkout.sessions.retrieve(s.id, {"expand": ["payment_intent.latest_charge"]})
    assert (done.status, done.payment_status) == ("complete", "paid")
    assert done.payment_intent.status == "succeeded"
    secure = done.payment_intent.latest_charge.payment_method_details.card.three_d_secure
    assert (secure.result, secure.version) == ("authenticated", "2.2.0")
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


def test_charges_carry_payment_method_details_as_stripe_fills_them(client, emu):
    """Funding and country by test number, a wallet, and SEPA's mandate reference."""
    s = client.v1.checkout.sessions.create(params=session_params())
    body = {"card": "4000056655665556", "wallet": "apple_pay"}
    assert emu.control("POST", f"checkout/sessions/{s.id}/pay", body)["declined"] is False
    done = client.v1.checkout.sessions.retrieve(s.id, {"expand": ["payment_intent.latest_charge"]})
    card = done.payment_intent.latest_charge.payment_method_details.card
    assert (card.brand, card.last4, card.funding, card.country) == ("visa", "5556", "debit", "US")
    assert (card.exp_month, card.exp_year, card.wallet.type) == (12, 2034, "apple_pay")

    wrong = client.v1.checkout.sessions.create(params=session_params())
    with pytest.raises(EmulatorError) as refused:
        emu.control(
            "POST", f"checkout/sessions/{wrong.id}/pay", {"card": "4242424242424242", "wallet": "x"}
        )
    assert refused.value.status == 400 and refused.value.body["error"]["param"] == "wallet"


def test_the_hosted_page_pays_through_a_wallet_with_3ds_and_the_typed_expiry(client, emu):
    s = client.v1.checkout.sessions.create(params=session_params())
    form = {"method": "card", "email": "ada@example.com", "card_number": "4000002500003155",
            "exp": "04 / 31", "wallet": "google_pay"}  # fmt: skip
    asked = requests.post(s.url, data=form, allow_redirects=False, timeout=10)
    assert asked.status_code == 200 and 'name="wallet" value="google_pay"' in asked.text
    done = requests.post(
        s.url, data={**form, "three_d_secure": "approve"}, allow_redirects=False, timeout=10
    )
    assert done.status_code == 303
    paid = client.v1.checkout.sessions.retrieve(s.id, {"expand": ["payment_intent.latest_charge"]})
    card = paid.payment_intent.latest_charge.payment_method_details.card
    assert (card.exp_month, card.exp_year, card.country) == (4, 2031, "FR")
    assert (card.wallet.type, card.three_d_secure.result) == ("google_pay", "authenticated")
