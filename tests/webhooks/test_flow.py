"""End to end: payments registered at the emulator, paid there, learned through its real webhooks
(delivered to the live server), and the shopper's return and cancel pages."""

from __future__ import annotations

import pytest
import requests

from app.errors import PayBridgeError
from app.extensions import db
from app.models import Payment, PspEvent
from app.payments.service import create_payment
from app.psp.factory import get_provider
from tests.support.factories import PaymentRef, registered_payment
from tests.support.psp import pay_session, stripe_client, wait_for_deliveries
from tests.support.waiting import wait_for_payment_status
from tests.webhooks.helpers import counts, load_payment

MERCHANT_SUCCESS = "http://merchant.example/thanks?order=42&lang=en"
MERCHANT_CANCEL = "http://merchant.example/cart"


def create(app, merchant, amount: int = 2500) -> PaymentRef:
    payment = registered_payment(
        app,
        merchant.id,
        amount=amount,
        description="Two tickets",
        success_url=MERCHANT_SUCCESS,
        cancel_url=MERCHANT_CANCEL,
    )
    assert payment.status == "INITIATED"
    return payment


def events(app, payment_id: int) -> list[tuple[str, str]]:
    """The payment's checkout session events (its charge events are tests/webhooks/
    test_charge_events.py's) and their outcomes, as stored."""
    with app.app_context():
        rows = db.session.execute(
            db.select(PspEvent)
            .where(
                PspEvent.payment_id == payment_id,
                PspEvent.event_type.like("checkout.session.%"),
            )
            .order_by(PspEvent.id)
        ).scalars()
        return [(row.event_type, row.outcome) for row in rows]


def test_card_payment_becomes_success_through_the_webhook(app, stripe_delivers, merchant):
    payment = create(app, merchant)
    pay_session(stripe_delivers, payment.session_id)

    stored = wait_for_payment_status(app, payment.id, "SUCCESS")

    last = stored.history[-1]
    assert (last.from_status, last.source) == ("INITIATED", "webhook")
    assert last.psp_event_id.startswith("evt_")
    assert stored.psp_payment_intent_id.startswith("pi_")
    [delivery] = wait_for_deliveries(
        stripe_delivers, event_type="checkout.session.completed", count=1
    )
    assert delivery["status"] == "succeeded"
    assert delivery["attempts"][-1]["status_code"] == 200
    assert ("checkout.session.completed", "applied") in events(app, payment.id)
    assert counts(app, payment.id)["notifications"] == 1


@pytest.mark.parametrize(
    ("iban", "final"),
    [("DE89370400440532013000", "SUCCESS"), ("DE62370400440532013001", "FAILED")],
    ids=["settles", "fails"],
)
def test_delayed_method_goes_pending_then_final(app, stripe_delivers, merchant, iban, final):
    payment = create(app, merchant)
    pay_session(stripe_delivers, payment.session_id, iban=iban)
    wait_for_payment_status(app, payment.id, "PENDING")

    stripe_delivers.control("POST", f"checkout/sessions/{payment.session_id}/settle", {})

    stored = wait_for_payment_status(app, payment.id, final)
    assert [h.to_status for h in stored.history] == ["CREATED", "INITIATED", "PENDING", final]
    assert bool(stored.failure_code) == (final == "FAILED")
    assert counts(app, payment.id)["notifications"] == 1


def test_out_of_order_delivery_still_ends_success(app, stripe_delivers, merchant):
    payment = create(app, merchant)
    # The next checkout.session.completed (unpaid) is held back until the session's next event
    # was sent.
    fault = {"kind": "webhook_out_of_order", "event_type": "checkout.session.completed"}
    stripe_delivers.control("POST", "faults", fault)
    pay_session(stripe_delivers, payment.session_id, iban="DE89370400440532013000")
    stripe_delivers.control("POST", f"checkout/sessions/{payment.session_id}/settle", {})

    wait_for_deliveries(stripe_delivers, event_type="checkout.session.completed", count=1)
    wait_for_deliveries(
        stripe_delivers, event_type="checkout.session.async_payment_succeeded", count=1
    )
    stored = wait_for_payment_status(app, payment.id, "SUCCESS")
    assert [h.to_status for h in stored.history] == ["CREATED", "INITIATED", "SUCCESS"]
    assert events(app, payment.id) == [
        ("checkout.session.async_payment_succeeded", "applied"),
        ("checkout.session.completed", "ignored"),
    ]
    assert counts(app, payment.id)["notifications"] == 1


def test_redelivered_event_changes_nothing(app, stripe_delivers, merchant):
    payment = create(app, merchant)
    pay_session(stripe_delivers, payment.session_id)
    [first] = wait_for_deliveries(stripe_delivers, event_type="checkout.session.completed", count=1)
    wait_for_payment_status(app, payment.id, "SUCCESS")

    stripe_delivers.control("POST", f"events/{first['event_id']}/redeliver")
    stripe_delivers.control("POST", f"events/{first['event_id']}/redeliver")

    deliveries = wait_for_deliveries(
        stripe_delivers, event_type="checkout.session.completed", count=3
    )
    assert [d["status"] for d in deliveries] == ["succeeded"] * 3
    stored = load_payment(app, payment.id)
    assert len(stored.history) == 3
    # Its events: the charge's and the session's (stored once each).
    assert counts(app, payment.id) == {"events": 2, "notifications": 1, "conflicts": 0}


def test_badly_signed_attempt_is_refused_then_the_retry_applies(app, stripe_delivers, merchant):
    payment = create(app, merchant)
    stripe_delivers.control("POST", "faults", {"kind": "webhook_bad_signature"})
    pay_session(stripe_delivers, payment.session_id)
    wait_for_payment_status(app, payment.id, "SUCCESS")
    wait_for_deliveries(stripe_delivers, event_type="checkout.session.completed", count=1)
    # The fault hits the first event sent (charge.succeeded, then the intent's, the session's).
    [retried] = wait_for_deliveries(stripe_delivers, event_type="charge.succeeded", count=1)
    forged = [[a["status_code"] for a in retried["attempts"]]]
    assert forged == [[400, 200]]
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(PspEvent)) == 3


def test_expiry_fails_the_payment(app, stripe_delivers, merchant):
    payment = create(app, merchant)
    declined = pay_session(stripe_delivers, payment.session_id, card="4000000000000002")
    assert declined["declined"] is True
    assert load_payment(app, payment.id).status == "INITIATED"  # a decline is not final

    stripe_delivers.control("POST", "clock/advance", {"seconds": 2 * 3600})

    stored = wait_for_payment_status(app, payment.id, "FAILED")
    assert stored.failure_code == "expired"
    assert counts(app, payment.id)["notifications"] == 1


def test_created_payment_whose_answer_was_lost_is_finished_by_the_webhook(
    app, stripe_delivers, merchant
):
    # The session is created at Stripe but PayBridge never hears the answer.
    stripe_delivers.control(
        "POST", "faults", {"kind": "lose_response", "path": "/v1/checkout/sessions"}
    )
    with app.app_context(), pytest.raises(PayBridgeError):
        create_payment(
            merchant.id,
            {
                "merchant_reference": "order-lost",
                "amount": 700,
                "currency": "EUR",
                "success_url": MERCHANT_SUCCESS,
                "cancel_url": MERCHANT_CANCEL,
            },
            idempotency_key=None,
        )
    with app.app_context():
        payment = db.session.execute(
            db.select(Payment).where(Payment.merchant_reference == "order-lost")
        ).scalar_one()
        assert (payment.status, payment.psp_session_id) == ("CREATED", None)
        payment_id, public_id = payment.id, payment.public_id
    client = stripe_client(stripe_delivers)
    [session] = [
        s for s in client.v1.checkout.sessions.list().data if s.client_reference_id == public_id
    ]

    pay_session(stripe_delivers, session.id)

    stored = wait_for_payment_status(app, payment_id, "SUCCESS")
    assert stored.psp_session_id == session.id
    assert [h.to_status for h in stored.history] == ["CREATED", "INITIATED", "SUCCESS"]


# The shopper's return


def test_return_page_asks_the_psp_once_applies_and_redirects(
    app, stripe_delivers, live_server, merchant
):
    payment = create(app, merchant)
    stripe_delivers.control("POST", "deliveries/pause")
    pay_session(stripe_delivers, payment.session_id)
    assert load_payment(app, payment.id).status == "INITIATED"  # no webhook yet

    response = requests.get(
        f"{live_server.url}/checkout/return/{payment.public_id}",
        params={"session_id": payment.session_id},
        allow_redirects=False,
        timeout=10,
    )

    assert response.status_code == 303
    assert response.headers["Location"] == (
        f"http://merchant.example/thanks?order=42&lang=en&payment_id={payment.public_id}"
    )
    stored = load_payment(app, payment.id)
    assert stored.status == "SUCCESS"
    assert stored.history[-1].source == "return"

    # The webhook arriving afterwards is stored and changes nothing.
    stripe_delivers.control("POST", "deliveries/resume")
    wait_for_deliveries(stripe_delivers, event_type="checkout.session.completed", count=1)
    assert events(app, payment.id) == [("checkout.session.completed", "ignored")]
    assert len(load_payment(app, payment.id).history) == 3
    assert counts(app, payment.id)["notifications"] == 1


def test_return_for_an_open_session_changes_nothing(app, stripe_delivers, client, merchant):
    payment = create(app, merchant)
    response = client.get(f"/checkout/return/{payment.public_id}?session_id=cs_forged")
    assert response.status_code == 303
    assert load_payment(app, payment.id).status == "INITIATED"


def test_return_while_the_psp_is_down_still_redirects(app, stripe_delivers, client, merchant):
    payment = create(app, merchant)
    stripe_delivers.control(
        "POST", "faults", {"kind": "http_500", "count": 5, "path": "/v1/checkout/sessions"}
    )
    response = client.get(f"/checkout/return/{payment.public_id}")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("http://merchant.example/thanks")
    assert load_payment(app, payment.id).status == "INITIATED"


def test_return_does_not_ask_again_once_final(app, stripe_delivers, client, merchant):
    payment = create(app, merchant)
    pay_session(stripe_delivers, payment.session_id)
    wait_for_payment_status(app, payment.id, "SUCCESS")
    # Were the PSP asked, this fault would answer 500 and be used up.
    stripe_delivers.control("POST", "faults", {"kind": "http_500", "path": "/v1/checkout"})
    assert client.get(f"/checkout/return/{payment.public_id}").status_code == 303
    assert len(stripe_delivers.control("GET", "faults")["data"]) == 1


def test_unknown_payment_return_is_a_404_page(app, client):
    response = client.get("/checkout/return/pay_doesnotexist0000", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert client.get("/checkout/cancel/pay_nope").status_code == 404
    assert client.get("/checkout/status/not-an-id").status_code == 404


def test_cancel_redirects_to_the_merchant_and_leaves_the_payment_open(
    app, stripe_delivers, client, merchant
):
    """The hosted page's back link: the shopper lands on the merchant's page, the checkout stays
    open (they may come back, as on Stripe), and once it closes unpaid the payment FAILED as
    canceled_by_shopper, not expired."""
    payment = create(app, merchant)
    response = client.get(f"/checkout/cancel/{payment.public_id}")
    assert response.status_code == 303
    assert response.headers["Location"] == (
        f"http://merchant.example/cart?payment_id={payment.public_id}"
    )
    left = load_payment(app, payment.id)
    assert left.status == "INITIATED" and left.shopper_canceled_at is not None
    stripe_client(stripe_delivers).v1.checkout.sessions.expire(payment.session_id)
    closed = wait_for_payment_status(app, payment.id, "FAILED")
    assert (closed.failure_reason, closed.failure_code) == ("canceled_by_shopper", "expired")


def test_status_page_refreshes_until_final(app, stripe_delivers, client, merchant):
    payment = create(app, merchant, amount=2500)
    page = client.get(f"/checkout/status/{payment.public_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert '<meta http-equiv="refresh" content="3">' in html
    assert "Waiting for your payment" in html and "25.00 EUR" in html
    assert 'role="status"' in html and "Stop updating" in html
    paused = client.get(f"/checkout/status/{payment.public_id}?refresh=0").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in paused

    pay_session(stripe_delivers, payment.session_id)
    wait_for_payment_status(app, payment.id, "SUCCESS")
    html = client.get(f"/checkout/status/{payment.public_id}").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in html
    assert "Payment received" in html
    assert f"payment_id={payment.public_id}" in html  # link back to the merchant


def test_reloading_the_return_page_cannot_flood_the_psp(
    app, stripe_delivers, client, merchant, monkeypatch
):
    payment = create(app, merchant)
    with app.app_context():
        provider = get_provider()
    asked = []
    real_retrieve = provider.retrieve_checkout_session

    def counting_retrieve(session_id):  # a spy: the real call still goes to the emulator
        asked.append(session_id)
        return real_retrieve(session_id)

    monkeypatch.setattr(provider, "retrieve_checkout_session", counting_retrieve)
    for _ in range(10):
        assert client.get(f"/checkout/return/{payment.public_id}").status_code == 303
    assert asked == [payment.session_id] * 6  # RETURN_CHECKS_PER_PAYMENT
