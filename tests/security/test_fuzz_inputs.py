"""Property-based fuzzing (Hypothesis) of what the OpenAPI document does not describe: the
webhook endpoint with correctly signed Stripe events whose fields hold anything JSON can
carry, the list filters of the API and the dashboard with arbitrary query strings (raw
bytes too, invalid UTF-8 included), and the URLs PayBridge takes from outside: the dashboard
log-in's `next`, the dashboard's notify-URL form and a create's return URLs (then the public
checkout pages that redirect to them). Any 5xx fails; a refused event stores nothing.

Bounded by the "paybridge" Hypothesis profile (tests/security/conftest.py)."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.models import PspEvent
from tests.support.api import auth_headers, create_body
from tests.support.factories import PASSWORD
from tests.support.pages import csrf_from, token_for
from tests.support.rows import count_rows
from tests.webhooks.helpers import stripe_headers

# -- values ---------------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50)
    | st.sampled_from(["", "x" * 300, "x" * 50_000, "cs_test_1", "pi_1", "sub_1", "in_1"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
stripe_ids = st.one_of(
    st.text(min_size=1, max_size=30), st.sampled_from(["x" * 256, "x" * 10_000]), json_values
)
timestamps = st.one_of(
    st.integers(min_value=-(2**65), max_value=2**65), st.just(int(time.time())), json_values
)

OBJECT_KINDS = ["checkout.session", "invoice", "subscription", "refund", "charge", "other"]
EVENT_TYPES = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "invoice.paid",
    "invoice.payment_failed",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "charge.refunded",
    "refund.updated",
]


@st.composite
def stripe_events(draw) -> dict:
    """An event shaped like Stripe's, each field anything JSON can carry."""
    obj = draw(
        st.fixed_dictionaries(
            {"object": st.sampled_from(OBJECT_KINDS) | json_values, "id": stripe_ids},
            optional={
                name: json_values
                for name in (
                    "status",
                    "payment_status",
                    "amount_total",
                    "amount_due",
                    "amount_paid",
                    "amount",
                    "currency",
                    "client_reference_id",
                    "metadata",
                    "payment_intent",
                    "subscription",
                    "latest_invoice",
                    "charge",
                    "refunds",
                    "lines",
                    "items",
                    "parent",
                    "payments",
                    "billing_reason",
                    "failure_reason",
                    "url",
                    "cancel_at_period_end",
                    "attempt_count",
                )
            }  # fmt: skip
            | {name: timestamps for name in ("created", "expires_at", "canceled_at")},
        )
    )
    return draw(
        st.fixed_dictionaries(
            {
                "id": stripe_ids,
                "object": st.just("event"),
                "type": st.sampled_from(EVENT_TYPES) | json_values,
                "data": st.fixed_dictionaries({"object": st.just(obj)}) | st.one_of(json_values),
            },
            optional={"created": timestamps, "livemode": json_values},
        )
    )


def test_signed_events_with_any_contents_never_get_a_server_error(app, client):
    @settings(max_examples=settings.default.max_examples * 2)
    @given(event=stripe_events())
    def post(event: dict) -> None:
        before = count_rows(app, PspEvent)
        body = json.dumps(event).encode()
        answer = client.post("/webhooks/stripe", data=body, headers=stripe_headers(body))
        assert answer.status_code < 500, (answer.status_code, answer.get_data(as_text=True))
        assert answer.get_json() is not None
        if answer.status_code == 400:
            assert answer.get_json()["error"]["code"] == "WEBHOOK_PAYLOAD_INVALID"
            assert count_rows(app, PspEvent) == before  # refused: nothing stored

    post()


# -- list filters ---------------------------------------------------------------------------------

# Times and days anywhere in what Python can hold, with and without an offset: the ends of
# that range are where conversions overflow, so they are drawn on purpose too.
times = st.builds(
    lambda moment, offset: moment.isoformat() + offset,
    st.datetimes(),
    st.sampled_from(["", "Z", "-05:00", "+14:00"]),
)
EDGE_TIMES = (
    ["9999-12-31", "9999-12-31T23:59:59-05:00", "9999-12-31T23:00:00Z", "0001-01-01",
     "0001-01-01T00:00:00+01:00", "10000-01-01", "0000-00-00T00:00:00Z", "2026-02-30",
     "1969-12-31", "-2026-01-01"]
)  # fmt: skip
EDGE_NUMBERS = (
    ["1e400", "-1e400", "NaN", "inf", "-0", "0", "9" * 40, "-" + "9" * 40, "1e-400", "0x10",
     "1_000", "９"]
)  # fmt: skip
edge_times, edge_numbers = st.sampled_from(EDGE_TIMES), st.sampled_from(EDGE_NUMBERS)
raw_values = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=20),  # sent as percent-escaped bytes: invalid UTF-8 too
    st.integers().map(str),
    st.floats().map(str),
)
TIME_PARAMS = {"created_gte", "created_lte", "date_from", "date_to"}
NUMBER_PARAMS = {"limit", "amount_min", "amount_max", "merchant_id"}


def _value(name: str):
    if name in TIME_PARAMS:
        return st.one_of(edge_times, times, st.dates().map(str), raw_values)
    if name in NUMBER_PARAMS:
        return st.one_of(edge_numbers, st.integers().map(str), raw_values)
    return raw_values


def _query(params: dict[str, object]) -> str:
    def escape(value) -> str:
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")
        return quote_from_bytes(raw, safe="")

    return "&".join(f"{escape(k)}={escape(v)}" for k, v in params.items())


def _edges(names: list[str]) -> list[dict[str, str]]:
    """Each parameter alone at each of its edges: swept in full before the random examples."""
    sweep = []
    for name in names:
        values = EDGE_TIMES if name in TIME_PARAMS else EDGE_NUMBERS
        sweep += [{name: value} for value in values if name in TIME_PARAMS | NUMBER_PARAMS]
    return sweep


def _edge(name: str):
    if name in TIME_PARAMS:
        return edge_times
    return edge_numbers if name in NUMBER_PARAMS else raw_values


def _params(names: list[str]):
    """Any mix of the parameters, or one alone at an edge (the common way to meet a bug)."""
    return st.one_of(
        st.fixed_dictionaries({}, optional={name: _value(name) for name in names}),
        st.sampled_from(names).flatmap(lambda name: st.fixed_dictionaries({name: _edge(name)})),
    )


API_FILTERS = ["status", "created_gte", "created_lte", "merchant_reference", "limit",
               "starting_after", "other"]  # fmt: skip
DASHBOARD_LISTS = {
    "/dashboard/payments": ["q", "status", "currency", "payment_type", "date_from", "date_to",
                            "amount_min", "amount_max", "merchant_id", "after", "before"],
    "/dashboard/payments/export.csv": ["q", "status", "date_from", "date_to", "amount_min",
                                       "amount_max", "merchant_id"],
    "/dashboard/events": ["outcome", "event_type", "merchant_id", "before"],
    "/dashboard/audit": ["action", "merchant_id", "before"],
    "/dashboard/subscriptions": ["status", "merchant_id", "before"],
    "/dashboard/reconciliation": ["before"],
}  # fmt: skip


# A request costs a few milliseconds here: three times the profile's examples.
FILTER_FUZZ = settings(max_examples=settings.default.max_examples * 3)


def test_api_list_filters_never_get_a_server_error(client, make_unthrottled_merchant, make_payment):
    merchant, key = make_unthrottled_merchant("Filtered")
    make_payment(merchant_id=merchant.id)

    def check(params) -> None:
        answer = client.get(f"/api/v1/payments?{_query(params)}", headers=auth_headers(key))
        assert answer.status_code in (200, 400), (params, answer.get_data(as_text=True))
        if answer.status_code == 400:
            assert answer.get_json()["error"]["code"] in ("VALIDATION_ERROR", "INVALID_CURSOR")

    for params in _edges(API_FILTERS):
        check(params)
    FILTER_FUZZ(given(params=_params(API_FILTERS))(check))()


EVENT_FILTERS = ["type", "created_gte", "created_lte", "limit", "starting_after", "other"]
# Real types and families, mangled and joined by commas as a client might.
event_types = st.one_of(
    st.lists(
        st.sampled_from(["payment.succeeded", "payment.*", "refund.*", "dispute.closed", "*",
                         "payment.", ".*", "payment.**", "%", "_", " payment.failed "])
        | st.text(max_size=20),
        min_size=1,
        max_size=25,
    ).map(",".join),
    raw_values,
)  # fmt: skip


def test_events_list_filters_never_get_a_server_error(
    app, client, make_unthrottled_merchant, make_payment
):
    merchant, key = make_unthrottled_merchant("Events filtered")
    make_payment(merchant_id=merchant.id)

    def check(params) -> None:
        answer = client.get(f"/api/v1/events?{_query(params)}", headers=auth_headers(key))
        assert answer.status_code in (200, 400), (params, answer.get_data(as_text=True))
        if answer.status_code == 400:
            assert answer.get_json()["error"]["code"] in ("VALIDATION_ERROR", "INVALID_CURSOR")

    for params in _edges(EVENT_FILTERS):
        check(params)
    params = st.fixed_dictionaries(
        {},
        optional={name: event_types if name == "type" else _value(name) for name in EVENT_FILTERS},
    )
    FILTER_FUZZ(given(params=params)(check))()


@pytest.mark.parametrize("path", sorted(DASHBOARD_LISTS))
def test_dashboard_list_filters_never_get_a_server_error(client_op, make_payment, tenants, path):
    make_payment(merchant_id=tenants.a_id)

    def check(params) -> None:
        answer = client_op.get(f"{path}?{_query(params)}")
        if path.endswith(".csv") and answer.status_code == 200:
            answer.get_data()  # the stream runs its queries as it is read
        assert answer.status_code in (200, 400), (params, answer.status_code)

    for params in _edges(DASHBOARD_LISTS[path]):
        check(params)
    fuzz = settings(max_examples=settings.default.max_examples * 2)
    fuzz(given(params=_params(DASHBOARD_LISTS[path]))(check))()


# -- URLs from outside ----------------------------------------------------------------------------

# Built from the pieces urllib chokes on (brackets, ports out of range or not numbers), mixed
# with anything at all: what matters is what urlsplit and `.port` make of them.
url_hosts = st.one_of(
    st.sampled_from(["[", "]", "[1:2]", "[zz]", "[::1]", "[::1", "::1]", "[v1.x]", "127.0.0.1",
                     "shop.example", "", "u:p@shop.example", "%5B", "[::ffff:127.0.0.1]"]),
    st.text(max_size=12),
)  # fmt: skip
url_ports = st.one_of(
    st.none(),
    st.sampled_from(["", "0", "65535", "65536", "99999", "-1", "x", "\u0663", " 80"]),
    st.integers(min_value=-10, max_value=10**6).map(str),
)


def _url(scheme: str, host: str, port: str | None, path: str) -> str:
    return f"{scheme}{host}{'' if port is None else ':' + port}{path}"


urls = st.one_of(
    st.builds(
        _url,
        st.sampled_from(["http://", "https://", "//", "", "HTTP://", "http:/", "javascript:"]),
        url_hosts,
        url_ports,
        st.one_of(st.just(""), st.just("/dashboard/payments"), st.text(max_size=12)),
    ),
    st.text(max_size=40),
)
URL_FUZZ = settings(max_examples=settings.default.max_examples * 2)


def test_the_login_next_value_never_gets_a_server_error_nor_leaves_the_dashboard(app, tenants):
    @URL_FUZZ
    @given(nxt=urls)
    def check(nxt: str) -> None:
        client = app.test_client()  # logged out: a logged-in client skips `next`
        token = csrf_from(client.get("/dashboard/login").get_data(as_text=True))
        answer = client.post(
            "/dashboard/login",
            data={"email": tenants.a_email, "password": PASSWORD, "next": nxt,
                  "csrf_token": token},
        )  # fmt: skip
        assert answer.status_code == 302, (nxt, answer.status_code)
        location = answer.headers["Location"]
        assert location.startswith("/dashboard") and not location.startswith("//"), (nxt, location)

    check()


def test_the_dashboard_endpoint_form_never_gets_a_server_error(client_a):
    token = token_for(client_a, "/dashboard/notification-endpoints")

    @URL_FUZZ
    @given(url=urls)
    def check(url: str) -> None:
        answer = client_a.post(
            "/dashboard/notification-endpoints",
            data={"url": url, "all_events": "y", "csrf_token": token},
        )
        assert answer.status_code in (200, 400), (url, answer.status_code)

    check()


def test_return_urls_never_get_a_server_error_at_create_nor_on_the_checkout_pages(
    app, client, make_unthrottled_merchant, emu, monkeypatch
):
    # The fuzzer's creates come faster than a shop's: the PSP create cap (tested in
    # test_psp_rate_limits.py) is not what this test is about.
    monkeypatch.setitem(app.config, "PSP_CREATE_RATE_PER_SECOND", 10_000.0)
    _merchant, key = make_unthrottled_merchant("Returned to")

    @URL_FUZZ
    @given(field=st.sampled_from(["success_url", "cancel_url"]), url=urls)
    def check(field: str, url: str) -> None:
        body = create_body(merchant_reference=f"fuzz-{uuid.uuid4().hex}", **{field: url})
        answer = client.post("/api/v1/payments", json=body, headers=auth_headers(key))
        assert answer.status_code in (201, 400), (url, answer.get_data(as_text=True))
        if answer.status_code == 400:
            assert answer.get_json()["error"]["code"] == "VALIDATION_ERROR"
            return
        public_id = answer.get_json()["id"]
        for page in ("return", "cancel", "status"):
            shown = client.get(f"/checkout/{page}/{public_id}?refresh=0")
            assert shown.status_code < 500, (url, page, shown.status_code)

    check()
