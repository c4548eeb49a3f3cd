"""The /_emulator control routes answer malformed input with a 400 JSON error, never a 500."""

from __future__ import annotations

import re

import pytest
import requests

from stripe_emulator.api import CONTROL_RULES

from .conftest import session_params

ROUTES = sorted(
    (method, re.sub(r"<\w+>", "x_unknown", rule.rule))
    for rule in CONTROL_RULES.iter_rules()
    for method in rule.methods - {"HEAD", "OPTIONS"}
)


def call(emu, method: str, path: str, *, data=None, json=None, headers=None):
    return requests.request(
        method, f"{emu.url}{path}", data=data, json=json, headers=headers, timeout=10
    )


def assert_400(resp, param: str | None = None) -> dict:
    assert resp.status_code == 400, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    if param is not None:
        assert error["param"] == param, error
    return error


@pytest.mark.parametrize(
    "raw", ["[1, 2]", "{not json", '"a string"', "42", "null"], ids=lambda r: r.split()[0]
)
@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_refuses_a_body_that_is_not_a_json_object(emu, method, path, raw):
    resp = call(emu, method, path, data=raw, headers={"Content-Type": "application/json"})
    assert_400(resp, "body")


BAD_FIELDS = [
    ("clock/advance", {"seconds": "abc"}, "seconds"),
    ("clock/advance", {"seconds": None}, "seconds"),
    ("clock/advance", {"seconds": True}, "seconds"),
    ("clock/advance", {"seconds": 10**400}, "seconds"),
    ("faults", {"kind": ["http_500"]}, "kind"),
    ("faults", {"kind": "nope"}, "kind"),
    ("faults", {}, "kind"),
    ("faults", {"kind": "http_500", "count": "x"}, "count"),
    ("faults", {"kind": "http_500", "count": 0}, "count"),
    ("faults", {"kind": "http_500", "count": 1.5}, "count"),
    ("faults", {"kind": "hang", "seconds": "forever"}, "seconds"),
    ("faults", {"kind": "http_500", "method": 5}, "method"),
    ("faults", {"kind": "http_500", "path": ["/v1"]}, "path"),
    ("faults", {"kind": "http_400", "code": {"a": 1}}, "code"),
    ("faults", {"kind": "refund_fail", "failure_reason": ["x"]}, "failure_reason"),
    ("latency", {"mean_ms": "fast"}, "mean_ms"),
    ("latency", {"mean_ms": 10, "p99_ms": -1}, "p99_ms"),
    ("webhook_endpoints", {}, "url"),
    ("webhook_endpoints", {"url": 5}, "url"),
    ("webhook_endpoints", {"url": "notaurl"}, "url"),
    ("webhook_endpoints", {"url": "http://h.test/x", "enabled_events": "all"}, "enabled_events"),
    ("webhook_endpoints", {"url": "http://h.test/x", "enabled_events": [1]}, "enabled_events"),
    ("webhook_endpoints", {"url": "http://h.test/x", "secret": 1}, "secret"),
    ("refunds/re_x/fail", {"failure_reason": 7}, "failure_reason"),
    ("refunds/re_x/fail", {"failure_reason": "bored"}, "failure_reason"),
    ("subscriptions/sub_x/fail_next_renewal", {"count": "many"}, "count"),
    ("subscriptions/sub_x/fail_next_renewal", {"count": 2.5}, "count"),
    ("subscriptions/sub_x/fail_next_renewal", {"decline_code": ["x"]}, "decline_code"),
    ("invoices/in_x/pay", {"outcome": []}, "outcome"),
    ("invoices/in_x/pay", {"outcome": "maybe"}, "outcome"),
    ("invoices/in_x/pay", {"decline_code": "nope"}, "decline_code"),
    ("checkout/sessions/cs_x/settle", {"outcome": 3}, "outcome"),
]


@pytest.mark.parametrize(("path", "body", "param"), BAD_FIELDS)
def test_bad_field_values_are_400_with_the_field_as_param(emu, path, body, param):
    now = emu.control("GET", "clock")["now"]
    assert_400(call(emu, "POST", f"/_emulator/{path}", json=body), param)
    # Nothing happened: no fault armed, the clock where it was.
    assert emu.control("GET", "faults")["data"] == []
    assert emu.control("GET", "clock")["now"] - now <= 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"card": 4242424242424242}, "card"),
        ({"iban": ["DE89370400440532013000"]}, "iban"),
        ({"outcome": 1}, "outcome"),
        ({"outcome": "maybe"}, "outcome"),
        ({"email": {"a": 1}}, "email"),
        ({"card": "4242424242424242", "name": 5}, "name"),
        ({"card": "4000000000003220", "three_d_secure": "maybe"}, "three_d_secure"),
        ({"iban": "DE89370400440532013000", "settle_outcome": "later"}, "settle_outcome"),
        ({}, "card"),
    ],
)
def test_pay_refuses_malformed_input_and_leaves_the_session_open(client, emu, body, param):
    s = client.v1.checkout.sessions.create(params=session_params())
    assert_400(call(emu, "POST", f"/_emulator/checkout/sessions/{s.id}/pay", json=body), param)
    assert client.v1.checkout.sessions.retrieve(s.id).status == "open"


def test_form_bodies_are_checked_the_same_way(emu):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert_400(call(emu, "POST", "/_emulator/clock/advance", data="seconds=abc", headers=form))
    assert_400(call(emu, "POST", "/_emulator/faults", data="0=http_500", headers=form), "body")
    ok = call(emu, "POST", "/_emulator/clock/advance", data="seconds=5", headers=form)
    assert ok.status_code == 200


def test_well_formed_input_still_works(emu):
    before = emu.control("GET", "clock")["now"]
    assert emu.control("POST", "clock/advance", {"seconds": "60"})["now"] >= before + 60
    assert emu.control("POST", "clock/advance", {})["now"] >= before + 60  # 0 by default
    fault = emu.control("POST", "faults", {"kind": "hang", "count": 2, "seconds": 0.5})
    assert (fault["remaining"], fault["seconds"]) == (2, 0.5)
    assert emu.control("POST", "latency", {"mean_ms": 0, "p99_ms": 0})["p99_ms"] == 0
    # Routes without input ignore an empty body or {} alike.
    assert call(emu, "POST", "/_emulator/deliveries/pause", data="").status_code == 200
    assert call(emu, "POST", "/_emulator/deliveries/resume", json={}).status_code == 200
    assert call(emu, "GET", "/_emulator/nowhere").status_code == 404


def test_pay_many_pays_each_session_and_reports_the_ones_it_could_not(client, emu):
    first, second, done = (
        client.v1.checkout.sessions.create(params=session_params()) for _ in range(3)
    )
    assert emu.control("POST", f"checkout/sessions/{done.id}/pay", {"outcome": "paid"})
    ids = [first.id, done.id, "cs_test_unknown", second.id]

    resp = call(
        emu,
        "POST",
        "/_emulator/checkout/sessions/pay",
        json={"ids": ids, "card": "4242424242424242"},
    )
    assert resp.status_code == 200, resp.text
    results = {r["id"]: r for r in resp.json()["results"]}
    assert [r["id"] for r in resp.json()["results"]] == ids
    for sid in (first.id, second.id):
        assert results[sid] == {
            "id": sid,
            "completed": True,
            "declined": False,
            "decline_code": None,
            "requires_action": False,
        }
        session = client.v1.checkout.sessions.retrieve(sid)
        assert (session.status, session.payment_status) == ("complete", "paid")
    assert results[done.id]["completed"] is False
    assert results[done.id]["error"]["code"] == "checkout_session_not_open"
    assert results["cs_test_unknown"]["completed"] is False
    assert results["cs_test_unknown"]["error"]["code"] == "resource_missing"

    completed = client.v1.events.list(params={"type": "checkout.session.completed"})
    assert {e.data.object["id"] for e in completed.data} == {first.id, second.id, done.id}


def test_pay_many_applies_the_options_to_each_and_checks_its_list(client, emu):
    s = client.v1.checkout.sessions.create(params=session_params())
    declined = emu.control(
        "POST", "checkout/sessions/pay", {"ids": [s.id], "card": "4000000000000002"}
    )
    assert declined["results"][0]["declined"] is True
    assert declined["results"][0]["completed"] is False
    assert client.v1.checkout.sessions.retrieve(s.id).status == "open"

    path = "/_emulator/checkout/sessions/pay"
    for ids in (None, [], "cs_x", [1], ["cs_x"] * 1001):
        assert_400(call(emu, "POST", path, json={"ids": ids, "card": "4242424242424242"}), "ids")
    assert_400(call(emu, "POST", path, json={"ids": [s.id], "outcome": 1}), "outcome")
    assert client.v1.checkout.sessions.retrieve(s.id).status == "open"


def test_create_many_takes_each_body_as_the_api_does(client, emu):
    from urllib.parse import urlencode

    good = urlencode(
        {
            "mode": "payment",
            "success_url": "http://shop.test/ok",
            "cancel_url": "http://shop.test/cancel",
            "line_items[0][price_data][currency]": "eur",
            "line_items[0][price_data][unit_amount]": "1234",
            "line_items[0][price_data][product_data][name]": "Order 1",
            "line_items[0][quantity]": "1",
            "client_reference_id": "pay_1",
            "metadata[paybridge_payment_id]": "pay_1",
        }
    )
    bad = urlencode({"mode": "payment", "success_url": "http://shop.test/ok"})  # no line items
    resp = call(emu, "POST", "/_emulator/checkout/sessions", json={"sessions": [good, bad, good]})
    assert resp.status_code == 200, resp.text
    first, refused, second = resp.json()["results"]
    assert refused["error"]["type"] == "invalid_request_error"
    assert first["session"]["id"] != second["session"]["id"]
    for made in (first["session"], second["session"]):
        session = client.v1.checkout.sessions.retrieve(made["id"])
        assert (session.status, session.amount_total, session.currency) == ("open", 1234, "eur")
        assert session.client_reference_id == "pay_1"
        assert session.metadata["paybridge_payment_id"] == "pay_1"
        assert session.url == made["url"]
    assert len(client.v1.checkout.sessions.list().data) == 2

    path = "/_emulator/checkout/sessions"
    for sessions in (None, [], good, [1], [good] * 1001):
        assert_400(call(emu, "POST", path, json={"sessions": sessions}), "sessions")
