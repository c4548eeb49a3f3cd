"""The emulator's /v1 API through the real stripe SDK: objects, lists, errors, idempotency."""

from __future__ import annotations

import re
import threading
import time

import pytest
import requests
import stripe

from tests.support.waiting import wait_until

from .conftest import session_params


def auth(emu) -> dict:
    return {"Authorization": f"Bearer {emu.api_key}"}


def test_create_retrieve_echoes_params_and_stripe_shape(client, emu):
    s = client.v1.checkout.sessions.create(
        params=session_params(
            client_reference_id="order_42",
            metadata={"order_id": "42", "empty": ""},
            customer_email="buyer@example.com",
        )
    )
    assert s.id.startswith("cs_test_")
    assert s.object == "checkout.session"
    assert (s.status, s.payment_status, s.mode) == ("open", "unpaid", "payment")
    assert s.amount_total == 3998 and s.currency == "usd"
    assert s.url == f"{emu.url}/c/pay/{s.id}"
    assert s.payment_intent is None
    assert s.metadata.to_dict() == {"order_id": "42"}
    assert s.client_reference_id == "order_42"
    assert s.livemode is False
    assert s.expires_at - s.created == 24 * 3600
    assert "{CHECKOUT_SESSION_ID}" in s.success_url

    again = client.v1.checkout.sessions.retrieve(s.id, {"expand": ["line_items"]})
    assert again.id == s.id
    item = again.line_items.data[0]
    assert (item.description, item.quantity, item.amount_total) == ("Widget", 2, 3998)
    items = client.v1.checkout.sessions.line_items.list(s.id)
    assert [i.id for i in items.data] == [item.id]


def test_every_fixture_key_is_present(client, emu, stripe_fixtures):
    s = client.v1.checkout.sessions.create(params=session_params())
    emu.control("POST", f"checkout/sessions/{s.id}/pay", {"card": "4242424242424242"})
    s = client.v1.checkout.sessions.retrieve(s.id)
    pi = client.v1.payment_intents.retrieve(s.payment_intent)
    # The sample shows `refunds` expanded; since API 2022-11-15 a charge lists them only then.
    charge = client.v1.charges.retrieve(pi.latest_charge, {"expand": ["refunds"]})
    item = client.v1.checkout.sessions.line_items.list(s.id).data[0]
    event = client.v1.events.list().data[0]
    endpoint = client.v1.webhook_endpoints.create(
        {"url": "http://127.0.0.1:9/nowhere", "enabled_events": ["checkout.session.completed"]}
    )
    for name, obj in [
        ("checkout.session", s),
        ("payment_intent", pi),
        ("charge", charge),
        ("item", item),
        ("price", item.price),
        ("event", event),
        ("webhook_endpoint", endpoint),
    ]:
        missing = set(stripe_fixtures[name]) - set(obj.to_dict())
        assert not missing, f"{name} lacks {sorted(missing)}"


def test_expire_open_session_then_refuse_second_expire(client):
    s = client.v1.checkout.sessions.create(params=session_params())
    expired = client.v1.checkout.sessions.expire(s.id, options={"idempotency_key": "exp-1"})
    assert (expired.status, expired.url) == ("expired", None)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.checkout.sessions.expire(s.id)
    assert exc.value.http_status == 400
    assert 'status in ["open"]' in exc.value.user_message
    assert "status of `expired`" in exc.value.user_message
    event = client.v1.events.list({"type": "checkout.session.expired"}).data[0]
    assert event.data.object.id == s.id
    assert event.request.idempotency_key == "exp-1"
    assert event.request.id.startswith("req_")


def test_expiry_by_clock_advance(client, emu):
    # A minute above Stripe's 30-minute minimum: the emulator's clock keeps ticking between
    # reading it here and the session's creation, by more than a second on a busy machine.
    expires_at = emu.control("GET", "clock")["now"] + 30 * 60 + 60
    s = client.v1.checkout.sessions.create(params=session_params(expires_at=expires_at))
    assert (s.expires_at, s.status) == (expires_at, "open")
    # Then the clock is moved to exactly expires_at, from wherever it has got to by now.
    now = emu.control("GET", "clock")["now"]
    assert now < expires_at
    emu.control("POST", "clock/advance", {"seconds": expires_at - now})
    assert client.v1.checkout.sessions.retrieve(s.id).status == "expired"
    event = client.v1.events.list({"types": ["checkout.session.expired"]}).data[0]
    assert event.data.object.id == s.id
    assert event.request.id is None
    with pytest.raises(Exception) as exc:
        emu.control("POST", f"checkout/sessions/{s.id}/pay", {"card": "4242424242424242"})
    assert exc.value.status == 400


def test_pagination_over_250_sessions_and_created_filters(client, emu):
    ids = [client.v1.checkout.sessions.create(params=session_params()).id for _ in range(250)]
    first = client.v1.checkout.sessions.list({"limit": 100})
    assert first.object == "list" and first.url == "/v1/checkout/sessions"
    assert first.has_more is True and len(first.data) == 100
    assert first.data[0].id == ids[-1]  # newest first
    seen = [s.id for s in client.v1.checkout.sessions.list({"limit": 100}).auto_paging_iter()]
    assert seen == list(reversed(ids))
    default = client.v1.checkout.sessions.list()
    assert len(default.data) == 10
    before = client.v1.checkout.sessions.list({"ending_before": ids[0], "limit": 3})
    assert [s.id for s in before.data] == list(reversed(ids[1:4]))

    emu.control("POST", "clock/advance", {"seconds": 100})
    later = client.v1.checkout.sessions.create(params=session_params()).id
    t = emu.control("GET", "clock")["now"]
    assert [s.id for s in client.v1.checkout.sessions.list({"created": {"gte": t - 1}}).data] == [
        later
    ]
    assert (
        len(client.v1.checkout.sessions.list({"created": {"lt": t - 50}, "limit": 100}).data) == 100
    )
    complete = client.v1.checkout.sessions.list({"status": "complete"})
    assert complete.data == [] and complete.has_more is False


def test_error_classes(client, emu):
    bad = stripe.StripeClient("sk_prod_nope", base_addresses={"api": emu.url})
    with pytest.raises(stripe.AuthenticationError) as exc:
        bad.v1.checkout.sessions.list()
    assert exc.value.http_status == 401 and exc.value.request_id.startswith("req_")
    r = requests.get(f"{emu.url}/v1/checkout/sessions")
    assert r.status_code == 401 and "error" in r.json()

    cases = [
        ({"mode": None}, "mode", "parameter_missing"),
        ({"foo": "bar"}, "foo", "parameter_unknown"),
        ({"payment_method_types": ["card"]}, "payment_method_types", None),
        ({"expires_at": int(time.time()) + 60}, "expires_at", None),
        ({"expires_at": int(time.time()) + 90000}, "expires_at", None),
        ({"line_items": None}, "line_items", "parameter_missing"),
    ]
    for override, param, code in cases:
        with pytest.raises(stripe.InvalidRequestError) as exc:
            client.v1.checkout.sessions.create(params=session_params(**override))
        assert exc.value.http_status == 400
        assert exc.value.param == param, override
        if code:
            assert exc.value.code == code
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.checkout.sessions.create(
            params=session_params(
                line_items=[{"price_data": {"currency": "usd", "unit_amount": 5, "foo": 1}}]
            )
        )
    assert exc.value.param == "line_items[0][price_data][foo]"

    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.checkout.sessions.retrieve("cs_test_missing")
    assert (exc.value.http_status, exc.value.code) == (404, "resource_missing")
    assert "No such checkout.session: 'cs_test_missing'" in exc.value.user_message
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.retrieve("pi_missing")
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.retrieve("evt_missing")

    emu.control("POST", "faults", {"kind": "http_429", "path": "/v1/checkout/sessions"})
    with pytest.raises(stripe.RateLimitError):
        client.v1.checkout.sessions.list()
    emu.control("POST", "faults", {"kind": "http_500", "method": "GET"})
    with pytest.raises(stripe.APIError) as exc:
        client.v1.checkout.sessions.list()
    assert exc.value.http_status == 500
    assert client.v1.checkout.sessions.list().object == "list"  # faults are used up
    assert emu.control("GET", "faults")["data"] == []


@pytest.mark.parametrize(
    "path, kind, param",
    [
        ("/v1/payment_intents/pi_missing", "payment_intent", "intent"),
        ("/v1/charges/ch_missing", "charge", "id"),
        ("/v1/events/evt_missing", "event", "id"),
        ("/v1/webhook_endpoints/we_missing", "webhook_endpoint", "id"),
        ("/v1/refunds/re_missing", "refund", "id"),
        ("/v1/subscriptions/sub_missing", "subscription", "id"),
        ("/v1/invoices/in_missing", "invoice", "invoice"),
        ("/v1/mandates/mandate_missing", "mandate", "mandate"),
    ],
)
def test_an_unknown_id_is_stripes_404_naming_the_object(emu, path, kind, param):
    r = requests.get(f"{emu.url}{path}", headers=auth(emu))
    oid = path.rsplit("/", 1)[1]
    assert r.status_code == 404, r.text
    assert r.json()["error"] == {
        "type": "invalid_request_error",
        "message": f"No such {kind}: '{oid}'",
        "code": "resource_missing",
        "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
        "param": param,
    }


def test_idempotent_replay_and_conflict(client, emu):
    params = session_params(client_reference_id="o1")
    a = client.v1.checkout.sessions.create(params=params, options={"idempotency_key": "key-1"})
    b = client.v1.checkout.sessions.create(params=params, options={"idempotency_key": "key-1"})
    assert b.to_dict() == a.to_dict()  # the stored response, field for field
    assert b.last_response.headers["Idempotent-Replayed"] == "true"
    assert b.last_response.headers["Original-Request"] == a.last_response.request_id
    assert "Idempotent-Replayed" not in a.last_response.headers
    assert len(client.v1.checkout.sessions.list().data) == 1

    headers = {**auth(emu), "Idempotency-Key": "raw-1"}
    first = requests.post(f"{emu.url}/v1/checkout/sessions", data="x=1", headers=headers)
    replay = requests.post(f"{emu.url}/v1/checkout/sessions", data="x=1", headers=headers)
    assert first.status_code == 400 and "Idempotent-Replayed" not in first.headers
    assert replay.status_code == 400  # validation errors are not stored ...
    assert "Idempotent-Replayed" not in replay.headers

    # ... while executed requests are, their errors included: replayed byte for byte.
    expire = f"{emu.url}/v1/checkout/sessions/{a.id}/expire"
    r1 = requests.post(expire, headers={**auth(emu), "Idempotency-Key": "e"})
    r2 = requests.post(expire, headers={**auth(emu), "Idempotency-Key": "e"})
    assert r1.status_code == r2.status_code == 200
    assert r1.json()["id"] == a.id and r1.json()["status"] == "expired"
    assert r2.content == r1.content
    assert r2.headers["Idempotent-Replayed"] == "true"
    assert r2.headers["Original-Request"] == r1.headers["Request-Id"]
    again = requests.post(expire, headers={**auth(emu), "Idempotency-Key": "e2"})
    assert again.status_code == 400  # a new key runs the endpoint: no longer open
    again_replay = requests.post(expire, headers={**auth(emu), "Idempotency-Key": "e2"})
    assert again_replay.status_code == 400 and again_replay.content == again.content
    assert again_replay.headers["Idempotent-Replayed"] == "true"
    assert "can be expired" in again_replay.json()["error"]["message"]

    with pytest.raises(stripe.IdempotencyError):
        client.v1.checkout.sessions.create(
            params=session_params(client_reference_id="o2"), options={"idempotency_key": "key-1"}
        )


def test_concurrent_same_key_is_409_then_replays(client, emu):
    emu.control("POST", "faults", {"kind": "hang", "seconds": 1.0, "method": "POST"})
    results = {}

    def first():
        results["a"] = client.v1.checkout.sessions.create(
            params=session_params(), options={"idempotency_key": "busy"}
        )

    t = threading.Thread(target=first)
    t.start()
    # The hang fault is used up once the first request took it: it now holds the key.
    wait_until(lambda: emu.control("GET", "faults")["data"] == [], what="the first request in")
    with pytest.raises(stripe.APIError) as exc:
        client.v1.checkout.sessions.create(
            params=session_params(), options={"idempotency_key": "busy"}
        )
    assert exc.value.http_status == 409
    t.join()
    again = client.v1.checkout.sessions.create(
        params=session_params(), options={"idempotency_key": "busy"}
    )
    assert again.id == results["a"].id


def test_lost_response_then_retry_with_same_key_returns_created_session(client, emu):
    emu.control("POST", "faults", {"kind": "lose_response", "path": "/v1/checkout/sessions"})
    with pytest.raises(stripe.APIError):
        client.v1.checkout.sessions.create(
            params=session_params(), options={"idempotency_key": "L"}
        )
    created = client.v1.checkout.sessions.list().data
    assert len(created) == 1
    retry = client.v1.checkout.sessions.create(
        params=session_params(), options={"idempotency_key": "L"}
    )
    assert retry.id == created[0].id


def test_bracket_forms_and_request_id(emu):
    raw = (
        "mode=payment&line_items%5B0%5D%5Bprice_data%5D%5Bcurrency%5D=eur"
        "&line_items%5B0%5D%5Bprice_data%5D%5Bunit_amount%5D=500"
        "&line_items[0][price_data][product_data][name]=Tea&line_items[0][quantity]=3"
        "&metadata%5Bk%5D=v&allowed_payment_method_types[]=card"
    )
    r = requests.post(
        f"{emu.url}/v1/checkout/sessions",
        data=raw,
        headers={**auth(emu), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["amount_total"] == 1500 and body["metadata"] == {"k": "v"}
    assert body["payment_method_types"] == ["card"]
    assert r.headers["Request-Id"].startswith("req_")
    listed = requests.get(
        f"{emu.url}/v1/checkout/sessions?created[gte]=0&limit=1", headers=auth(emu)
    )
    assert listed.json()["data"][0]["id"] == body["id"]
    assert listed.headers["Request-Id"].startswith("req_")


def test_answers_are_pretty_printed_json_as_stripe_sends_them(emu):
    r = requests.post(
        f"{emu.url}/v1/checkout/sessions",
        data={
            "mode": "payment",
            "success_url": "http://shop.test/ok",
            "line_items[0][price_data][currency]": "eur",
            "line_items[0][price_data][unit_amount]": "450",
            "line_items[0][price_data][product_data][name]": "Crème brûlée",
            "line_items[0][quantity]": "1",
            "metadata[note]": "Café ☕",
        },
        headers=auth(emu),
    )
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.text.startswith('{\n  "id": "cs_')  # two-space indent, one key per line
    assert r.json()["metadata"] == {"note": "Café ☕"}
    listed = requests.get(f"{emu.url}/v1/checkout/sessions?limit=1", headers=auth(emu))
    assert listed.text.startswith('{\n  "object": "list",\n  "data": [\n    {\n')
    assert listed.json()["data"][0]["id"] == r.json()["id"]


def test_pay_control_creates_payment_intent_and_events(client, emu):
    s = client.v1.checkout.sessions.create(params=session_params(customer_email="a@b.test"))
    declined = emu.control("POST", f"checkout/sessions/{s.id}/pay", {"card": "4000000000000002"})
    assert declined["declined"] is True and declined["decline_code"] == "generic_decline"
    assert declined["session"]["status"] == "open"
    paid = emu.control("POST", f"checkout/sessions/{s.id}/pay", {"card": "4242424242424242"})
    assert paid["declined"] is False
    s = client.v1.checkout.sessions.retrieve(s.id, {"expand": ["payment_intent"]})
    assert (s.status, s.payment_status, s.url) == ("complete", "paid", None)
    assert s.payment_intent.id.startswith("pi_") and s.payment_intent.status == "succeeded"
    assert s.customer_details.email == "a@b.test"
    assert (
        client.v1.checkout.sessions.list({"payment_intent": s.payment_intent.id}).data[0].id == s.id
    )
    types = [e.type for e in reversed(client.v1.events.list().data)]
    # The decline is announced on the session's intent, which the paid attempt then reuses;
    # each charge's event comes first, as on Stripe.
    assert types == [
        "charge.failed",
        "payment_intent.payment_failed",
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]
    completed = client.v1.events.list({"type": "checkout.session.completed"}).data[0]
    assert completed.api_version == "2026-10-28.endive"
    assert completed.data.object.payment_status == "paid"
    assert completed.request.id is None
    with pytest.raises(Exception) as exc:
        emu.control("POST", f"checkout/sessions/{s.id}/pay", {"card": "4242424242424242"})
    assert exc.value.status == 400


def test_delayed_payment_settles_by_clock_and_control(client, emu, stripe_fixtures):
    a = client.v1.checkout.sessions.create(params=session_params())
    b = client.v1.checkout.sessions.create(params=session_params())
    emu.control("POST", f"checkout/sessions/{a.id}/pay", {"iban": "DE89370400440532013000"})
    emu.control("POST", f"checkout/sessions/{b.id}/pay", {"iban": "DE62370400440532013001"})
    a = client.v1.checkout.sessions.retrieve(a.id, {"expand": ["payment_intent"]})
    assert (a.status, a.payment_status, a.payment_intent.status) == (
        "complete", "unpaid", "processing",
    )  # fmt: skip
    emu.control("POST", "clock/advance", {"seconds": 5})
    a = client.v1.checkout.sessions.retrieve(a.id, {"expand": ["payment_intent"]})
    b = client.v1.checkout.sessions.retrieve(b.id, {"expand": ["payment_intent"]})
    assert (a.payment_status, a.payment_intent.status) == ("paid", "succeeded")
    assert (b.payment_status, b.payment_intent.status) == ("unpaid", "requires_payment_method")
    assert client.v1.charges.retrieve(b.payment_intent.latest_charge).status == "failed"
    expanded = client.v1.checkout.sessions.retrieve(
        a.id, {"expand": ["payment_intent.latest_charge"]}
    )
    charge = expanded.payment_intent.latest_charge
    assert (charge.status, charge.paid, charge.payment_method_details.type) == (
        "succeeded", True, "sepa_debit",
    )  # fmt: skip
    # The charge names its mandate by id; the mandate holds the reference.
    mandate = client.v1.mandates.retrieve(charge.payment_method_details.sepa_debit.mandate)
    assert not set(stripe_fixtures["mandate"]) - set(mandate.to_dict())
    assert (mandate.object, mandate.status, mandate.payment_method) == (
        "mandate", "active", charge.payment_method,
    )  # fmt: skip
    assert mandate.payment_method_details.type == "sepa_debit"
    assert re.fullmatch(r"[A-Z0-9]{16}", mandate.payment_method_details.sepa_debit.reference)
    types = {e.type for e in client.v1.events.list({"limit": 100}).data}
    assert {
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "payment_intent.payment_failed",
    } <= types

    c = client.v1.checkout.sessions.create(params=session_params())
    emu.control("POST", f"checkout/sessions/{c.id}/pay", {"outcome": "unpaid"})
    settled = emu.control("POST", f"checkout/sessions/{c.id}/settle", {"outcome": "failed"})
    assert settled["session"]["payment_status"] == "unpaid"
    assert (
        client.v1.events.list({"type": "checkout.session.async_payment_failed"})
        .data[0]
        .data.object.id
        == c.id
    )


def test_subscription_mode_sets_subscription_on_completion(client, emu):
    s = client.v1.checkout.sessions.create(
        params=session_params(
            mode="subscription",
            line_items=[
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 900,
                        "product_data": {"name": "Plan"},
                        "recurring": {"interval": "month", "interval_count": 1},
                    },
                    "quantity": 1,
                }
            ],
        )
    )
    assert s.subscription is None
    emu.control("POST", f"checkout/sessions/{s.id}/pay", {"outcome": "paid"})
    s = client.v1.checkout.sessions.retrieve(s.id)
    assert s.subscription.startswith("sub_") and s.payment_status == "paid"


def test_hang_times_out_client_and_sdk_retries_recover_lost_response(emu):
    impatient = stripe.StripeClient(
        emu.api_key,
        base_addresses={"api": emu.url},
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=0.3),
    )
    emu.control("POST", "faults", {"kind": "hang", "seconds": 0.8, "method": "GET"})
    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.checkout.sessions.list()

    retrying = stripe.StripeClient(
        emu.api_key, base_addresses={"api": emu.url}, max_network_retries=2
    )
    emu.control("POST", "faults", {"kind": "lose_response", "method": "POST"})
    s = retrying.v1.checkout.sessions.create(params=session_params())
    assert [x.id for x in retrying.v1.checkout.sessions.list().data] == [s.id]


def test_reset_forgets_state_and_events_filter_by_created(client, emu):
    s = client.v1.checkout.sessions.create(params=session_params())
    client.v1.checkout.sessions.expire(s.id)
    t = emu.control("GET", "clock")["now"]
    assert len(client.v1.events.list({"created": {"gte": t - 5}}).data) == 1
    assert client.v1.events.list({"created": {"gt": t + 5}}).data == []
    emu.control("POST", "reset")
    assert client.v1.checkout.sessions.list().data == []
    assert client.v1.events.list().data == []


def test_filtered_event_lists_page_over_the_objects_the_filters_keep(client, emu):
    ids = [client.v1.checkout.sessions.create(params=session_params()).id for _ in range(7)]
    for sid in ids:
        emu.control("POST", f"checkout/sessions/{sid}/pay", {"card": "4242424242424242"})
    completed = client.v1.events.list({"type": "checkout.session.completed", "limit": 100}).data
    assert [e.data.object.id for e in completed] == list(reversed(ids))

    paged = client.v1.events.list({"types": ["checkout.session.completed"], "limit": 3})
    assert [e.id for e in paged.auto_paging_iter()] == [e.id for e in completed]
    before = client.v1.events.list(
        {"type": "checkout.session.completed", "ending_before": completed[-1].id, "limit": 2}
    )
    assert [e.id for e in before.data] == [completed[-3].id, completed[-2].id]
    assert before.has_more is True
    wildcard = client.v1.events.list({"types": ["checkout.session.*"], "limit": 100}).data
    assert [e.id for e in wildcard] == [e.id for e in completed]

    other = client.v1.events.list({"type": "payment_intent.succeeded"}).data[0]
    with pytest.raises(stripe.InvalidRequestError) as exc:  # a cursor the filter drops
        client.v1.events.list({"type": "checkout.session.completed", "starting_after": other.id})
    assert exc.value.param == "starting_after"


def test_setup_mode_and_zero_total_need_no_payment(client, emu):
    s = client.v1.checkout.sessions.create(
        params={"mode": "setup", "currency": "eur", "success_url": "http://x/s"}
    )
    assert (s.payment_status, s.amount_total) == ("no_payment_required", None)
    paid = emu.control("POST", f"checkout/sessions/{s.id}/pay", {"card": "4242424242424242"})
    assert paid["session"]["setup_intent"].startswith("seti_")
    free = session_params()
    free["line_items"][0]["price_data"]["unit_amount"] = 0
    z = client.v1.checkout.sessions.create(params=free)
    assert z.payment_status == "no_payment_required"
    done = emu.control("POST", f"checkout/sessions/{z.id}/pay", {"outcome": "paid"})
    assert done["session"]["status"] == "complete" and done["session"]["payment_intent"] is None


def test_concurrent_requests_are_safe(emu):
    from concurrent.futures import ThreadPoolExecutor

    retrying = stripe.StripeClient(
        emu.api_key, base_addresses={"api": emu.url}, max_network_retries=3
    )

    def create(n: int) -> str:
        key = "shared" if n % 2 else f"own-{n}"
        return retrying.v1.checkout.sessions.create(
            params=session_params(), options={"idempotency_key": key}
        ).id

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(create, range(40)))
    shared = {ids[n] for n in range(40) if n % 2}
    assert len(shared) == 1
    own = {ids[n] for n in range(40) if not n % 2}
    assert len(own) == 20
    listed = [s.id for s in retrying.v1.checkout.sessions.list({"limit": 100}).data]
    assert sorted(listed) == sorted(own | shared)
