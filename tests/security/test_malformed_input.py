"""Malformed input is a 400 in the documented error shape, never a 500, and stores nothing:
JSON nested past the limit, invalid Unicode (lone surrogates, bytes that are not UTF-8), numbers
no column holds, strings past the limits, times no database compares; signed Stripe events
with absurd field sizes; dashboard filters out of range (a form error, not a crash)."""

from __future__ import annotations

import json

import pytest

from app.models import IdempotencyRecord, Payment, PspEvent
from tests.support.api import auth_headers, create_body
from tests.support.rows import count_rows
from tests.webhooks.helpers import new_event_id, stripe_event_body, stripe_headers

ERROR_KEYS = {"code", "message", "param", "details"}


def assert_error(response, status: int, *codes: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) <= ERROR_KEYS
    assert body["error"]["code"] in codes, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def _body(**overrides) -> bytes:
    return json.dumps(create_body(**overrides)).encode()


def _with(field: str, raw_value: str) -> bytes:
    """A valid create body whose `field` is replaced by JSON text written by hand."""
    body = create_body()
    body[field] = "__HOLE__"
    return json.dumps(body).replace('"__HOLE__"', raw_value).encode()


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


BAD_BODIES = {
    "nested-100000": _with("metadata", _nested(100_000)),
    "nested-past-the-limit": _with("metadata", '{"a": ' * 8 + '"x"' + "}" * 8),
    "lone-surrogate-value": _with("merchant_reference", '"a\\ud800b"'),
    "lone-low-surrogate": _with("description", '"\\udfff"'),
    "lone-surrogate-key": _with("metadata", '{"\\ud800": "x"}'),
    "nan": _with("amount", "NaN"),
    "infinity": _with("amount", "Infinity"),
    "1e400": _with("amount", "1e400"),
    "huge-int": _with("amount", "9" * 40),
    "int-past-int64": _with("amount", str(2**63)),
    "string-past-the-limit": _with("description", json.dumps("x" * 10_001)),
    "invalid-utf8": _body()[:-1] + b', "x": "\xed\xa0\x80\xff"}',
    "utf16": json.dumps(create_body()).encode("utf-16"),
    "truncated": _body()[:-5],
}


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_a_bad_create_body_is_invalid_json_and_stores_nothing(app, client, make_merchant, name):
    _, key = make_merchant()
    answer = client.post(
        "/api/v1/payments",
        data=BAD_BODIES[name],
        headers={**auth_headers(key, f"key-{name}"), "Content-Type": "application/json"},
    )
    assert_error(answer, 400, "INVALID_JSON")
    assert count_rows(app, Payment) == 0
    assert count_rows(app, IdempotencyRecord) == 0


@pytest.mark.parametrize("name", ["nested-100000", "lone-surrogate-key", "1e400", "utf16"])
def test_a_bad_refund_body_is_invalid_json(client, make_merchant, name):
    _, key = make_merchant()
    answer = client.post(
        "/api/v1/payments/pay_doesnotmatter/refunds",
        data=BAD_BODIES[name],
        headers={**auth_headers(key), "Content-Type": "application/json"},
    )
    # The body is read before the payment is looked up.
    assert_error(answer, 400, "INVALID_JSON")


def test_a_body_within_the_limits_still_creates(client, make_merchant, emu):
    """The limits are far from any real body: 7 levels of nesting, long valid Unicode."""
    _, key = make_merchant()
    answer = client.post(
        "/api/v1/payments",
        json=create_body(merchant_reference="ünïcødé-😀-1", description="€" * 500),
        headers=auth_headers(key),
    )
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["merchant_reference"] == "ünïcødé-😀-1"


@pytest.mark.parametrize(
    "query, param",
    [
        ("created_gte=10000-01-01T00:00:00Z", "created_gte"),
        ("created_lte=9999-12-31T23:00:00-05:00", "created_lte"),
        ("created_gte=0001-01-01T00:00:00%2B01:00", "created_gte"),
        ("created_gte=1969-12-31T23:59:59Z", "created_gte"),
        ("created_gte=nan", "created_gte"),
        ("limit=1e400", "limit"),
        ("limit=NaN", "limit"),
        ("limit=99999999999999999999999999999", "limit"),
        ("limit=-99999999999999999999999999999", "limit"),
        ("merchant_reference=" + "x" * 5000, "merchant_reference"),
    ],
)
def test_list_filters_out_of_range_are_validation_errors(client, make_merchant, query, param):
    _, key = make_merchant()
    answer = client.get(f"/api/v1/payments?{query}", headers=auth_headers(key))
    error = assert_error(answer, 400, "VALIDATION_ERROR")
    assert error["param"] == param


@pytest.mark.parametrize(
    "path",
    ["pay_" + "x" * 10_000, "pay_%ED%A0%80%FF", "%00", "pay_%F0%9F%98%80"],
)
def test_odd_payment_ids_are_not_found(client, make_merchant, path):
    _, key = make_merchant()
    answer = client.get(f"/api/v1/payments/{path}", headers=auth_headers(key))
    assert_error(answer, 404, "PAYMENT_NOT_FOUND", "NOT_FOUND")


# -- the webhook endpoint: signed, but absurd -----------------------------------------------------


class _Ref:
    public_id = "pay_" + "A" * 24
    session_id = "cs_test_malformed"
    reference = "order-malformed"
    amount = 1000
    currency = "EUR"


def _signed_event(**session_fields) -> bytes:
    return stripe_event_body("checkout.session.completed", _Ref(), **session_fields)


def _edit(body: bytes, change) -> bytes:
    event = json.loads(body)
    change(event)
    return json.dumps(event).encode()


def _swap(old: str, new: str):
    """An event whose JSON text `old` is replaced by `new`, written by hand."""

    def make() -> bytes:
        text = json.dumps(json.loads(_signed_event()))
        assert old in text
        return text.replace(old, new, 1).encode()

    return make


WEBHOOK_BODIES = {
    "event-id-10k": lambda: _edit(_signed_event(), lambda e: e.update(id="evt_" + "x" * 10_000)),
    "event-id-number": lambda: _edit(_signed_event(), lambda e: e.update(id=12345)),
    "event-id-empty": lambda: _edit(_signed_event(), lambda e: e.update(id="")),
    "event-type-10k": lambda: _edit(_signed_event(), lambda e: e.update(type="x" * 10_000)),
    "session-id-10k": lambda: _signed_event(id="cs_" + "x" * 10_000),
    "intent-id-10k": lambda: _signed_event(payment_intent="pi_" + "x" * 10_000),
    "subscription-id-list": lambda: _signed_event(subscription=["sub_1"]),
    "status-long": lambda: _signed_event(status="x" * 5000),
    "metadata-900k": lambda: _signed_event(metadata={"note": "x" * 900_000}),
    "metadata-key-50k": lambda: _signed_event(metadata={"k" * 50_000: "v"}),
    "created-huge": lambda: _signed_event(created=10**30),
    "created-year-10000": lambda: _signed_event(expires_at=253_402_300_800),
    "created-negative": lambda: _signed_event(created=-(10**18)),
    "amount-1e400": _swap('"amount_total": 1000', '"amount_total": 1e400'),
    "amount-nan": _swap('"amount_total": 1000', '"amount_total": NaN'),
    "amount-huge": _swap('"amount_total": 1000', '"amount_total": ' + "9" * 50),
    "surrogate-in-id": _swap('"cs_test_malformed"', '"cs_\\ud800"'),
    "surrogate-in-metadata": _swap('"order-malformed"', '"\\udc00"'),
    "nested-100000": _swap('"livemode": false', '"livemode": ' + _nested(100_000)),
    "nested-40": _swap('"livemode": false', '"livemode": ' + _nested(40)),
    "not-an-object": lambda: b"[1, 2, 3]",
    "data-not-an-object": lambda: _edit(_signed_event(), lambda e: e.update(data="x")),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(WEBHOOK_BODIES))
def test_a_signed_but_absurd_event_is_refused_and_not_stored(app, client, name):
    body = WEBHOOK_BODIES[name]()
    answer = client.post("/webhooks/stripe", data=body, headers=stripe_headers(body))
    assert_error(answer, 400, "WEBHOOK_PAYLOAD_INVALID")
    assert count_rows(app, PspEvent) == 0


def test_a_signed_event_of_5_mb_is_refused_and_not_stored(app, client):
    body = _signed_event(metadata={"note": "x" * 5_000_000})
    answer = client.post("/webhooks/stripe", data=body, headers=stripe_headers(body))
    assert_error(answer, 413, "PAYLOAD_TOO_LARGE")
    assert count_rows(app, PspEvent) == 0


def test_a_signed_event_within_the_limits_is_stored(app, client):
    """The limits leave room for real events: long strings, Unicode, deep enough objects."""
    body = _signed_event(
        metadata={"note": "ü" * 30_000, "emoji": "😀"}, client_reference_id="", id="cs_" + "x" * 252
    )
    body = _edit(body, lambda e: e.update(id=new_event_id(), type="checkout.session.completed"))
    answer = client.post("/webhooks/stripe", data=body, headers=stripe_headers(body))
    assert answer.status_code == 200, answer.get_json()
    assert count_rows(app, PspEvent) == 1


# -- dashboard filters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, message",
    [
        ("date_to=9999-12-31", "Choose a day from 1970-01-01 to 9999-12-30."),
        ("date_from=0001-01-01", "Choose a day from 1970-01-01 to 9999-12-30."),
        ("date_from=10000-01-01", "Not a valid date value."),
        ("date_from=2026-02-30", "Not a valid date value."),
        ("amount_min=1e400", "That amount is too large."),
        ("amount_max=NaN", "Enter an amount"),
        ("amount_min=99999999999999999999999999", "That amount is too large."),
    ],
)
def test_dashboard_filters_out_of_range_are_form_errors(client_a, query, message):
    answer = client_a.get(f"/dashboard/payments?{query}")
    assert answer.status_code == 400
    assert message in answer.get_data(as_text=True)


@pytest.mark.parametrize("merchant_id", ["99999999999999999999999999", "-1", "0", "1e400"])
def test_an_operators_merchant_filter_out_of_range_is_a_form_error(client_op, merchant_id):
    answer = client_op.get(f"/dashboard/payments?merchant_id={merchant_id}")
    assert answer.status_code == 400
