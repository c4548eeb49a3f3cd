"""POST /api/v1/payments/{id}/refunds against MariaDB and the emulator: amounts, rules, errors."""

from __future__ import annotations

import pytest

from app.models import Payment, Refund
from app.psp import get_provider
from tests.support.api import auth_headers, post_refund
from tests.support.rows import get_row


def test_full_refund_without_amount_refunds_everything(client, make_merchant, paid_payment, app):
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id, amount=5000).public_id

    r = post_refund(client, key, pay_id)

    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["object"] == "refund" and body["id"].startswith("re_")
    assert body["payment_id"] == pay_id
    assert body["amount"] == 5000 and body["currency"] == "EUR"
    assert body["status"] == "succeeded"  # the emulator confirms card refunds at once
    assert body["psp_refund_id"].startswith("re_") and body["psp_refund_id"] != body["id"]
    with app.app_context():  # the PSP holds one refund, tagged with ours
        at_psp = get_provider().retrieve_refund(body["psp_refund_id"])
    assert (at_psp.amount, at_psp.status) == (5000, "succeeded")
    assert at_psp.metadata == {"paybridge_refund_id": body["id"], "paybridge_payment_id": pay_id}

    payment = client.get(f"/api/v1/payments/{pay_id}", headers=auth_headers(key)).get_json()
    assert payment["status"] == "SUCCESS"
    assert payment["refunded_amount"] == 5000
    assert [x["id"] for x in payment["refunds"]] == [body["id"]]
    assert payment["refunds"][0]["status"] == "succeeded"

    # Nothing remains: a second refund is refused with its own code.
    again = post_refund(client, key, pay_id, {"amount": 1})
    assert again.status_code == 422
    assert again.get_json()["error"]["code"] == "REFUND_AMOUNT_EXCEEDS_REMAINING"
    assert again.get_json()["error"]["details"]["remaining"] == 0


def test_partial_refunds_add_up_and_the_default_is_what_remains(
    client, make_merchant, paid_payment, app
):
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id, amount=5000).public_id

    first = post_refund(client, key, pay_id, {"amount": 1200, "reason": "requested_by_customer"})
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["amount"] == 1200
    assert first.get_json()["reason"] == "requested_by_customer"
    assert get_row(app, Payment, public_id=pay_id).refunded_amount == 1200

    too_much = post_refund(client, key, pay_id, {"amount": 3801})
    assert too_much.status_code == 422
    error = too_much.get_json()["error"]
    assert error["code"] == "REFUND_AMOUNT_EXCEEDS_REMAINING" and error["param"] == "amount"
    assert error["details"]["remaining"] == 3800

    rest = post_refund(client, key, pay_id, {})
    assert rest.status_code == 201
    assert rest.get_json()["amount"] == 3800

    payment = get_row(app, Payment, public_id=pay_id)
    assert payment.status == "SUCCESS" and payment.refunded_amount == 5000
    assert get_row(app, Refund, public_id=rest.get_json()["id"]).psp_refund_id


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"amount": 0}, 400, "INVALID_REFUND_AMOUNT"),
        ({"amount": -5}, 400, "INVALID_REFUND_AMOUNT"),
        ({"amount": 10.5}, 400, "VALIDATION_ERROR"),
        ({"amount": "100"}, 400, "VALIDATION_ERROR"),
        ({"amount": True}, 400, "VALIDATION_ERROR"),
        ({"reason": "changed my mind"}, 400, "VALIDATION_ERROR"),
        ({"amount": 100, "currency": "USD"}, 400, "VALIDATION_ERROR"),
    ],
)
def test_invalid_amounts_and_fields_are_refused_and_nothing_is_stored(
    client, make_merchant, paid_payment, app, body, status, code
):
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id, amount=5000).public_id

    r = post_refund(client, key, pay_id, body)

    assert r.status_code == status
    assert r.get_json()["error"]["code"] == code
    payment = client.get(f"/api/v1/payments/{pay_id}", headers=auth_headers(key)).get_json()
    assert payment["refunds"] == [] and payment["refunded_amount"] == 0


def test_a_body_that_is_not_json_is_refused(client, make_merchant, paid_payment):
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id).public_id
    r = client.post(
        f"/api/v1/payments/{pay_id}/refunds",
        data="amount=5",
        headers={**auth_headers(key), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
    r = client.post(
        f"/api/v1/payments/{pay_id}/refunds",
        data="[1]",
        headers={**auth_headers(key), "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "INVALID_JSON"


def test_refund_of_a_payment_that_is_not_success_is_refused(client, make_merchant, app, emu):
    merchant, key = make_merchant()
    created = client.post(
        "/api/v1/payments",
        json={
            "merchant_reference": "open-1",
            "amount": 900,
            "currency": "EUR",
            "success_url": "https://shop.example/ok",
            "cancel_url": "https://shop.example/no",
        },
        headers=auth_headers(key),
    )
    assert created.status_code == 201
    pay_id = created.get_json()["id"]

    r = post_refund(client, key, pay_id, {"amount": 100})

    assert r.status_code == 409
    error = r.get_json()["error"]
    assert error["code"] == "REFUND_NOT_ALLOWED"
    assert error["details"] == {"payment_id": pay_id, "status": "INITIATED"}

    expired = client.post(f"/api/v1/payments/{pay_id}/expire", headers=auth_headers(key))
    assert expired.get_json()["status"] == "FAILED"
    r = post_refund(client, key, pay_id)
    assert r.status_code == 409 and r.get_json()["error"]["details"]["status"] == "FAILED"


def test_someone_elses_payment_is_not_found(client, make_merchant, paid_payment):
    owner, _ = make_merchant("Owner")
    _, other_key = make_merchant("Other")
    pay_id = paid_payment(owner.id).public_id
    r = post_refund(client, other_key, pay_id, {"amount": 100})
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "PAYMENT_NOT_FOUND"
    r = post_refund(client, other_key, "pay_doesnotexist", {"amount": 100})
    assert r.status_code == 404


def test_a_subscriptions_first_payment_is_refunded_through_its_invoice(
    app, client, make_merchant, paid_payment
):
    merchant, key = make_merchant()
    pay_id = paid_payment(
        merchant.id,
        merchant_reference="sub-1",
        amount=900,
        payment_type="RECC",
        interval="month",
    ).public_id

    # A subscription-mode session has no payment intent: the checkout's invoice has it.
    assert get_row(app, Payment, public_id=pay_id).psp_payment_intent_id is None

    r = post_refund(client, key, pay_id, {"amount": 400})

    assert r.status_code == 201, r.get_json()
    assert r.get_json()["status"] == "succeeded"
    payment = get_row(app, Payment, public_id=pay_id)
    assert payment.refunded_amount == 400 and payment.psp_payment_intent_id
    with app.app_context():
        at_psp = get_provider().retrieve_refund(r.get_json()["psp_refund_id"])
    assert at_psp.payment_intent_id == payment.psp_payment_intent_id


def test_a_three_decimal_refund_in_thousandths_is_refused_before_the_psp_is_asked(
    client, make_merchant, paid_payment, app
):
    """Stripe refunds KWD in whole hundredths only; a smaller one (any amount ≥ 1 in other
    currencies: refunds have no per-currency minimum) is refused with the reason, nothing kept."""
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id, amount=5000, currency="KWD").public_id

    refused = post_refund(client, key, pay_id, {"amount": 1005})

    assert refused.status_code == 400
    error = refused.get_json()["error"]
    assert (error["code"], error["param"]) == ("INVALID_REFUND_AMOUNT", "amount")
    assert "must end in 0" in error["message"]
    with app.app_context():
        payment = get_row(app, Payment, public_id=pay_id)
        assert Refund.query.filter_by(payment_id=payment.id).count() == 0
    taken = post_refund(client, key, pay_id, {"amount": 1010})
    assert taken.status_code == 201 and taken.get_json()["amount"] == 1010
