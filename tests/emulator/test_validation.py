"""Values Stripe refuses are refused here too: 400 invalid_request_error with Stripe's param/code.

Stripe documents the codes ``parameter_invalid_integer``, ``amount_too_large``, ``email_invalid``
and ``url_invalid``; a value outside an enum (currency, method type, status, boolean) gets a
message and ``param`` but no ``code`` on Stripe, and here.
"""

from __future__ import annotations

import pytest
import requests
import stripe

from .conftest import session_params


def item(**price_data) -> dict:
    data = {"currency": "usd", "unit_amount": 1999, "product_data": {"name": "Widget"}}
    data.update(price_data)
    return {"price_data": data, "quantity": 1}


CREATE_CASES = [
    pytest.param({"currency": "zzz"}, "currency", None, id="session-currency"),
    pytest.param(
        {"line_items": [item(currency="zzz")]},
        "line_items[0][price_data][currency]",
        None,
        id="price-currency",
    ),
    pytest.param(
        {"line_items": [item(unit_amount=10**21)]},
        "line_items[0][price_data][unit_amount]",
        "parameter_invalid_integer",
        id="unit-amount-not-int64",
    ),
    pytest.param(
        {"line_items": [item(unit_amount=100_000_000)]},
        "line_items[0][price_data][unit_amount]",
        "amount_too_large",
        id="unit-amount-over-max",
    ),
    pytest.param(
        {"line_items": [item(unit_amount=None, unit_amount_decimal="100000000.5")]},
        "line_items[0][price_data][unit_amount_decimal]",
        "amount_too_large",
        id="unit-amount-decimal-over-max",
    ),
    pytest.param(
        {"line_items": [item(unit_amount=None, unit_amount_decimal="Infinity")]},
        "line_items[0][price_data][unit_amount_decimal]",
        None,
        id="unit-amount-decimal-infinite",
    ),
    pytest.param(
        {"line_items": [item(unit_amount=None, unit_amount_decimal="-5")]},
        "line_items[0][price_data][unit_amount_decimal]",
        None,
        id="unit-amount-decimal-negative",
    ),
    pytest.param(
        {"line_items": [{**item(unit_amount=99_999_999), "quantity": 2}]},
        "line_items",
        "amount_too_large",
        id="total-over-max",
    ),
    pytest.param({"customer_email": "not-an-email"}, "customer_email", "email_invalid", id="email"),
    pytest.param(
        {"customer_email": "a b@example.com"}, "customer_email", "email_invalid", id="email-space"
    ),
    pytest.param({"success_url": "notaurl"}, "success_url", "url_invalid", id="success-url"),
    pytest.param({"cancel_url": "ftp://shop.test/x"}, "cancel_url", "url_invalid", id="cancel-url"),
    pytest.param(
        {"allowed_payment_method_types": ["bitcoin"]},
        "allowed_payment_method_types[0]",
        None,
        id="allowed-method",
    ),
    pytest.param(
        {"excluded_payment_method_types": ["card", "bitcoin"]},
        "excluded_payment_method_types[1]",
        None,
        id="excluded-method",
    ),
]


@pytest.mark.parametrize(("override", "param", "code"), CREATE_CASES)
def test_create_refuses_values_stripe_refuses(client, emu, override, param, code):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.checkout.sessions.create(
            params=session_params(**override), options={"idempotency_key": f"bad-{param}"}
        )
    err = exc.value
    assert err.http_status == 400
    assert err.error.type == "invalid_request_error"
    assert (err.param, err.code) == (param, code)
    assert err.user_message
    assert client.v1.checkout.sessions.list().data == []
    # A refused parameter stores nothing under the key: the corrected request goes through.
    fixed = client.v1.checkout.sessions.create(
        params=session_params(), options={"idempotency_key": f"bad-{param}"}
    )
    assert fixed.status == "open"


def test_values_stripe_accepts_still_pass(client):
    s = client.v1.checkout.sessions.create(
        params=session_params(
            line_items=[item(currency="EUR", unit_amount=99_999_999)],
            customer_email="o'brien+shop@mail.example.co.uk",
            success_url="http://127.0.0.1:5000/ok?session_id={CHECKOUT_SESSION_ID}",
            cancel_url="https://localhost/cancel",
            allowed_payment_method_types=["card", "sepa_debit", "ideal"],
            excluded_payment_method_types=["ideal"],
        )
    )
    assert (s.currency, s.amount_total) == ("eur", 99_999_999)
    assert s.payment_method_types == ["card", "sepa_debit"]
    decimal = client.v1.checkout.sessions.create(
        params=session_params(line_items=[item(unit_amount=None, unit_amount_decimal="1999.4")])
    )
    assert decimal.amount_total == 1999


@pytest.mark.parametrize(
    ("list_call", "params", "param"),
    [
        pytest.param("checkout.sessions", {"status": "bogus"}, "status", id="sessions-status"),
        pytest.param("events", {"delivery_success": "maybe"}, "delivery_success", id="events"),
        pytest.param("subscriptions", {"status": "bogus"}, "status", id="subscriptions-status"),
        pytest.param("invoices", {"status": "bogus"}, "status", id="invoices-status"),
        pytest.param("events", {"created": {"gte": 10**21}}, "created[gte]", id="created-int64"),
    ],
)
def test_list_filters_refuse_unknown_values(client, list_call, params, param):
    service = client.v1
    for part in list_call.split("."):
        service = getattr(service, part)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        service.list(params)
    assert (exc.value.http_status, exc.value.param) == (400, param)
    assert exc.value.error.type == "invalid_request_error"


def test_plain_http_gets_stripes_error_object(emu):
    auth = {"Authorization": f"Bearer {emu.api_key}"}
    r = requests.get(f"{emu.url}/v1/events?delivery_success=maybe", headers=auth)
    assert r.status_code == 400
    assert r.json() == {
        "error": {
            "type": "invalid_request_error",
            "message": "Invalid boolean: maybe",
            "param": "delivery_success",
        }
    }
    r = requests.post(
        f"{emu.url}/v1/checkout/sessions",
        headers=auth,
        data="mode=payment&success_url=notaurl&line_items[0][quantity]=1"
        "&line_items[0][price_data][currency]=usd&line_items[0][price_data][unit_amount]=5"
        "&line_items[0][price_data][product_data][name]=W",
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "url_invalid",
        "success_url",
    )
    assert error["doc_url"] == "https://stripe.com/docs/error-codes/url-invalid"


def test_webhook_endpoint_url_must_be_a_url(client):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.webhook_endpoints.create({"url": "notaurl", "enabled_events": ["*"]})
    assert (exc.value.param, exc.value.code) == ("url", "url_invalid")


def test_a_payment_under_stripes_minimum_charge_is_refused(client):
    """As Stripe does: 0.49 EUR is refused with amount_too_small; 0.50 EUR and a free checkout
    are not (PayBridge refuses such amounts before it calls; this keeps the emulator honest)."""
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.checkout.sessions.create(
            params=session_params(line_items=[item(currency="eur", unit_amount=49)])
        )
    assert (exc.value.code, exc.value.param) == ("amount_too_small", "line_items")
    assert "at least €0.50 eur" in exc.value.user_message
    for amount in (50, 0):
        session = client.v1.checkout.sessions.create(
            params=session_params(line_items=[item(currency="eur", unit_amount=amount)])
        )
        assert session.amount_total == amount
