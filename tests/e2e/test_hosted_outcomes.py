"""Every outcome of the emulator's hosted page, end to end, as a client app sees it.

A merchant (its notify URL: the real `receiver`) creates a payment through the JSON API of the
live app; a shopper in Chromium opens its `checkout_url` on the emulator's hosted page and pays
(a success card; a decline, then the session expires; SEPA that settles later, succeeded or
failed). Stripe's webhooks come from the emulator over HTTP, PayBridge's notification goes out
through the RQ outbox. Each case ends with the final status read back from
`GET /api/v1/payments/{id}` (with its history) and exactly one notification, verified with the
`standardwebhooks` package against the merchant's signing secret.

The merchant's own success/cancel pages (https://shop.example/…) are answered inside the
browser (Playwright routes), so nothing leaves the machine.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import pytest
import requests
from playwright.sync_api import Page, expect
from standardwebhooks import Webhook

from tests.support.browser import shoot
from tests.support.delivery import deliver_due_notifications
from tests.support.payflow import DECLINED_CARD, SUCCESS_CARD, ensure_stripe_webhook_endpoint
from tests.support.waiting import wait_until

MERCHANT_SUCCESS = "https://shop.example/ok"
MERCHANT_CANCEL = "https://shop.example/cart"
IBAN_SETTLES_SUCCEEDED = "DE89370400440532013000"
IBAN_SETTLES_FAILED = "DE62370400440532013001"


@dataclass
class Case:
    id: str
    pay: str  # how the shopper pays on the hosted page: "card" or "sepa"
    number: str  # card number or IBAN, as a shopper types it
    path: list[str]  # the statuses the payment passes through, from CREATED
    event_type: str  # the notification's `type`


CASES = [
    Case("card-succeeds", "card", "4242 4242 4242 4242", ["SUCCESS"], "payment.succeeded"),
    Case("card-declined-then-expires", "card", "4000 0000 0000 0002", ["FAILED"], "payment.failed"),
    Case(
        "delayed-method-succeeds",
        "sepa",
        IBAN_SETTLES_SUCCEEDED,
        ["PENDING", "SUCCESS"],
        "payment.succeeded",
    ),
    Case(
        "delayed-method-fails", "sepa", IBAN_SETTLES_FAILED, ["PENDING", "FAILED"], "payment.failed"
    ),
]
assert {c.number.replace(" ", "") for c in CASES[:2]} == {SUCCESS_CARD, DECLINED_CARD}


@pytest.fixture
def stripe_delivers(app, emulator, live_server):
    """The emulator, reset, sending its webhooks to the live app; reset again afterwards (the
    expiry case moves the emulator clock, which no other test should inherit)."""
    emulator.control("POST", "reset")
    ensure_stripe_webhook_endpoint(emulator, live_server)
    yield emulator
    emulator.control("POST", "reset")
    app.extensions.pop("paybridge_psp", None)  # a fresh circuit breaker for the next test


class Api:
    """The merchant's client app calling PayBridge's JSON API over real HTTP."""

    def __init__(self, base_url: str, raw_key: str) -> None:
        self.base = base_url + "/api/v1"
        self.http = requests.Session()
        self.http.trust_env = False  # localhost only: never through a proxy
        self.http.headers["Authorization"] = f"Bearer {raw_key}"

    def create_payment(self, reference: str) -> dict:
        response = self.http.post(
            self.base + "/payments",
            json={
                "merchant_reference": reference,
                "amount": 2500,
                "currency": "EUR",
                "description": "A framed print",
                "customer_email": "ada@example.com",
                "success_url": MERCHANT_SUCCESS,
                "cancel_url": MERCHANT_CANCEL,
            },
            headers={"Idempotency-Key": reference},
            timeout=15,
        )
        assert response.status_code == 201, response.text
        return response.json()

    def payment(self, payment_id: str) -> dict:
        response = self.http.get(f"{self.base}/payments/{payment_id}", timeout=15)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for_status(self, payment_id: str, status: str, timeout: float = 20.0) -> dict:
        seen = {}

        def reached():
            seen.update(self.payment(payment_id))
            return dict(seen) if seen["status"] == status else None

        try:
            return wait_until(reached, timeout=timeout, interval=0.1, what=f"status {status}")
        except AssertionError:
            raise AssertionError(
                f"{payment_id} is {seen.get('status')}, expected {status}: "
                f"{seen.get('status_history')}"
            ) from None


def answer_merchant_pages(page: Page) -> None:
    """The merchant's success and cancel pages, served inside the browser."""
    page.route(
        "https://shop.example/**",
        lambda route: route.fulfill(
            status=200,
            content_type="text/html",
            body="<!doctype html><title>Shop</title><h1>Back at the shop</h1>",
        ),
    )


def pay_with_card(page: Page, number: str) -> None:
    page.get_by_label("Card", exact=True).check()
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry (MM / YY)").fill("12 / 34")
    page.get_by_label("CVC").fill("123")
    page.get_by_label("Name on card").fill("Ada Lovelace")
    page.get_by_role("button", name="Pay €25.00").click()


def pay_by_sepa(page: Page, iban: str) -> None:
    page.get_by_label("SEPA Direct Debit (settles later)").check()
    expect(page.get_by_label("Card number")).to_be_hidden()
    page.get_by_label("IBAN").fill(iban)
    # The test IBAN decides how the bank settles it later (not the control call below).
    page.get_by_label("Simulated outcome").select_option(label="Decided by the test IBAN")
    page.get_by_role("button", name="Pay €25.00").click()


def session_at_stripe(emulator, session_id: str) -> dict:
    response = requests.get(
        f"{emulator.url}/v1/checkout/sessions/{session_id}",
        auth=(emulator.api_key, ""),
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def expire_by_the_clock(emulator, expires_at: str) -> None:
    """Move the emulator's clock past the session's expiry: Stripe expires it on its own and
    sends `checkout.session.expired`, as it would an hour after an abandoned checkout."""
    due = int(datetime.fromisoformat(expires_at.replace("Z", "+00:00")).timestamp())
    now = emulator.control("GET", "clock")["now"]
    assert due > now, (due, now)
    emulator.control("POST", "clock/advance", {"seconds": due - now + 1})


def stripe_has_delivered_everything(emulator) -> bool:
    """No webhook is still on its way to PayBridge (one could make a second notification)."""
    deliveries = emulator.control("GET", "deliveries")["data"]
    return bool(deliveries) and all(d["status"] == "succeeded" for d in deliveries)


def notifications_for(receiver, payment_id: str) -> list:
    return [r for r in receiver.requests if r.json()["data"]["id"] == payment_id]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hosted_page_outcome_ends_in_its_final_status_with_one_signed_notification(
    case, page, app, live_server, stripe_delivers, make_merchant, receiver
):
    emulator = stripe_delivers
    merchant, raw_key = make_merchant("Hosted Page Shop", notify_url=receiver.url)
    api = Api(live_server.url, raw_key)
    created = api.create_payment(f"order-{case.id}-{secrets.token_hex(4)}")
    payment_id, session_id = created["id"], created["psp_session_id"]
    assert created["status"] == "INITIATED"
    assert created["checkout_url"] == f"{emulator.url}/c/pay/{session_id}"

    answer_merchant_pages(page)
    page.goto(created["checkout_url"])
    expect(page.locator("#total")).to_have_text("€25.00")
    expect(page.get_by_label("Email")).to_have_value("ada@example.com")
    back_at_the_shop = re.compile(
        re.escape(MERCHANT_SUCCESS) + r"\?(.*&)?payment_id=" + re.escape(payment_id)
    )

    if case.id == "card-declined-then-expires":
        pay_with_card(page, case.number)
        expect(page.get_by_role("alert")).to_have_text("Your card was declined.")
        expect(page).to_have_url(created["checkout_url"])
        shoot(page, "hosted-checkout-declined")
        # A decline is not an outcome: the session stays open and so does the payment.
        assert session_at_stripe(emulator, session_id)["status"] == "open"
        assert api.payment(payment_id)["status"] == "INITIATED"
        expire_by_the_clock(emulator, created["expires_at"])
        final = api.wait_for_status(payment_id, "FAILED")
        assert final["failure_code"] == "expired"
        page.reload()
        expect(page.get_by_role("status")).to_contain_text("has expired")
        expect(page.get_by_role("button", name=re.compile("^Pay"))).to_have_count(0)
    elif case.pay == "card":
        pay_with_card(page, case.number)
        # Stripe sends the shopper to PayBridge's return page, which goes on to the merchant's.
        expect(page).to_have_url(back_at_the_shop)
        final = api.wait_for_status(payment_id, "SUCCESS")
        assert session_at_stripe(emulator, session_id)["payment_status"] == "paid"
    else:
        pay_by_sepa(page, case.number)
        expect(page).to_have_url(back_at_the_shop)
        pending = api.wait_for_status(payment_id, "PENDING")
        assert pending["checkout_url"] is None
        deliver_due_notifications(app)
        assert notifications_for(receiver, payment_id) == []  # PENDING is not final: no news
        # Days later the bank settles the debit the way the IBAN says.
        emulator.control("POST", f"checkout/sessions/{session_id}/settle", {})
        final = api.wait_for_status(payment_id, case.path[-1])

    history = final["status_history"]
    statuses = ["CREATED", "INITIATED", *case.path]
    assert [(h["from"], h["to"]) for h in history] == list(
        zip([None, *statuses[:-1]], statuses, strict=True)
    )
    assert [h["status_version"] for h in history] == list(range(1, len(history) + 1))
    assert final["status_version"] == len(history)
    last = history[-1]
    if case.id == "card-succeeds":
        # The webhook or the shopper's return (which asks Stripe) may learn it first.
        assert last["source"] in ("webhook", "return"), last
    else:
        # Expiry and settlement happen with no shopper around: only Stripe's webhook tells.
        assert last["source"] == "webhook", last
        assert last["psp_event_id"].startswith("evt_"), last

    # Exactly one notification reaches the client app, signed with the merchant's secret.
    def delivered():
        deliver_due_notifications(app)
        return notifications_for(receiver, payment_id)

    wait_until(delivered, timeout=20, interval=0.2, what="the notification")
    wait_until(
        lambda: stripe_has_delivered_everything(emulator), timeout=20, what="Stripe's webhooks"
    )
    deliver_due_notifications(app)  # anything a late webhook might have queued
    assert api.payment(payment_id)["status_version"] == final["status_version"]
    [notification] = notifications_for(receiver, payment_id)
    assert len(receiver.requests) == 1
    body = Webhook(merchant.signing_secret).verify(notification.body, notification.headers)
    assert body["type"] == case.event_type
    assert body["id"] == notification.headers["webhook-id"]
    assert body["data"]["id"] == payment_id
    assert body["data"]["status"] == final["status"]
    assert body["data"]["status_version"] == final["status_version"]
    assert body["data"]["merchant_reference"] == created["merchant_reference"]
