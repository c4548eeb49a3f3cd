"""Exactly-once creation: POST /api/v1/payments against MariaDB, Redis and the emulator."""

from __future__ import annotations

import threading
import urllib.request
from datetime import UTC, timedelta

import pytest
import requests
from sqlalchemy import select

from app.common import idempotency
from app.extensions import db
from app.models import IdempotencyRecord, Payment, PaymentStatusChange, utcnow
from app.payments.service import CREATE_METHOD, CREATE_PATH, new_payment
from app.payments.validation import fingerprint, validate_create_params
from tests.support.api import auth_headers, create_body
from tests.support.concurrency import at_once
from tests.support.psp import checkout_sessions
from tests.support.rows import count_rows
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("emu")


@pytest.fixture
def api_merchant(make_merchant):
    """(merchant, raw API key)."""
    return make_merchant("Core Shop")


@pytest.fixture
def provider(app):
    """The app's Stripe adapter, with its circuit closed again after the test."""
    from app.psp import get_provider

    with app.app_context():
        psp = get_provider()
    psp.breaker.close()
    yield psp
    psp.breaker.close()


def test_create_registers_at_the_psp_and_returns_a_working_checkout_url(
    app, client, api_merchant, emulator, provider
):
    _, key = api_merchant
    response = client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key, "k-1"))
    assert response.status_code == 201, response.get_json()
    payment = response.get_json()
    assert payment["id"].startswith("pay_")
    assert payment["status"] == "INITIATED"
    assert payment["currency"] == "EUR" and payment["amount"] == 2599
    assert payment["psp_session_id"].startswith("cs_test_")
    assert payment["expires_at"].endswith("Z")
    assert "Idempotent-Replayed" not in response.headers
    with urllib.request.urlopen(payment["checkout_url"], timeout=10) as page:
        assert page.status == 200

    (session,) = checkout_sessions(emulator)
    assert session["id"] == payment["psp_session_id"]
    assert session["client_reference_id"] == payment["id"]
    assert session["metadata"]["paybridge_payment_id"] == payment["id"]
    assert session["metadata"]["merchant_reference"] == "order-1001"
    assert session["amount_total"] == 2599 and session["currency"] == "eur"
    base = app.config["PUBLIC_BASE_URL"]
    assert session["success_url"] == (
        f"{base}/checkout/return/{payment['id']}?session_id={{CHECKOUT_SESSION_ID}}"
    )
    assert session["cancel_url"] == f"{base}/checkout/cancel/{payment['id']}"

    with app.app_context():
        stored = db.session.execute(select(Payment)).scalar_one()
        assert stored.success_url == "https://shop.example.com/thanks"
        history = [(h.from_status, h.to_status, h.source) for h in stored.history]
        assert history == [(None, "CREATED", "api"), ("CREATED", "INITIATED", "api")]
        record = db.session.execute(select(IdempotencyRecord)).scalar_one()
        assert record.state == "completed" and record.response_status == 201


def test_same_key_and_body_replays_the_first_answer(app, client, api_merchant, emulator, provider):
    _, key = api_merchant
    first = client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key, "k-2"))
    again = client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key, "k-2"))
    assert again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count_rows(app, Payment) == 1
    assert len(checkout_sessions(emulator)) == 1


def test_replay_does_not_depend_on_key_order_or_currency_case(app, client, api_merchant, provider):
    _, key = api_merchant
    first = client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key, "k-3"))
    reordered = dict(reversed(list(create_body(currency="EUR").items())))
    again = client.post("/api/v1/payments", json=reordered, headers=auth_headers(key, "k-3"))
    assert again.status_code == 201 and again.get_json()["id"] == first.get_json()["id"]


def test_same_key_with_another_body_is_refused(app, client, api_merchant, provider):
    _, key = api_merchant
    client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key, "k-4"))
    other = client.post(
        "/api/v1/payments", json=create_body(amount=100), headers=auth_headers(key, "k-4")
    )
    assert other.status_code == 422
    assert other.get_json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert count_rows(app, Payment) == 1


def test_keys_belong_to_one_merchant(app, client, make_merchant, provider):
    _, key_a = make_merchant("A")
    _, key_b = make_merchant("B")
    a = client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key_a, "shared"))
    b = client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key_b, "shared"))
    assert a.status_code == b.status_code == 201
    assert a.get_json()["id"] != b.get_json()["id"]


def test_duplicate_merchant_reference_names_the_existing_payment(
    app, client, api_merchant, provider
):
    _, key = api_merchant
    first = client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key, "k-5"))
    dup = client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key, "k-6"))
    assert dup.status_code == 409
    error = dup.get_json()["error"]
    assert error["code"] == "DUPLICATE_MERCHANT_REFERENCE"
    assert error["param"] == "merchant_reference"
    assert error["details"]["payment_id"] == first.get_json()["id"]
    without_key = client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key))
    assert without_key.status_code == 409
    assert count_rows(app, Payment) == 1
    assert count_rows(app, IdempotencyRecord) == 1


def test_twenty_concurrent_identical_creates_make_one_payment_and_one_session(
    app, live_server, api_merchant, emulator, provider
):
    _, key = api_merchant

    def create() -> requests.Response:
        return requests.post(
            f"{live_server.url}/api/v1/payments",
            json=create_body(),
            headers=auth_headers(key, "concurrent-1"),
            timeout=30,
        )

    results = at_once([create] * 20, timeout=60)

    assert len(results) == 20
    statuses = sorted(r.status_code for r in results)
    ok = [r for r in results if r.status_code == 201]
    # Losers wait for the winner's answer; none may see a half-made payment.
    assert all(s in (201, 409) for s in statuses), statuses
    assert ok, statuses
    ids = {r.json()["id"] for r in ok}
    assert len(ids) == 1
    assert all(r.json()["checkout_url"] for r in ok)
    for r in results:
        if r.status_code == 409:
            assert r.json()["error"]["code"] == "REQUEST_IN_PROGRESS"
            assert r.headers["Retry-After"]
    assert sum(1 for r in ok if r.headers.get("Idempotent-Replayed") != "true") == 1
    assert count_rows(app, Payment) == 1
    assert len(checkout_sessions(emulator)) == 1


def test_psp_rejecting_the_payment_makes_it_failed_with_the_psp_code(
    app, client, api_merchant, emulator, provider
):
    _, key = api_merchant
    emulator.control(  # what Stripe answers an account that does not take this currency
        "POST",
        "faults",
        {
            "kind": "http_400",
            "path": "/v1/checkout/sessions",
            "code": "currency_not_supported",
            "message": "The currency eur is not supported for this account.",
        },
    )
    response = client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key, "r-1"))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "PSP_REJECTED"
    assert error["details"]["psp_code"] == "currency_not_supported"
    assert "not supported for this account" in error["message"]
    with app.app_context():
        payment = db.session.execute(select(Payment)).scalar_one()
        assert payment.status == "FAILED"
        assert payment.failure_code == "currency_not_supported"
        assert payment.history[-1].reason.startswith("rejected by the PSP")
    assert checkout_sessions(emulator) == []
    replay = client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key, "r-1"))
    assert replay.status_code == 422
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == response.get_json()


@pytest.mark.parametrize("fault", ["http_500", "lose_response"])
def test_psp_outage_leaves_created_and_a_retry_finishes_without_a_second_session(
    app, client, api_merchant, emulator, provider, fault
):
    _, key = api_merchant
    emulator.control("POST", "faults", {"kind": fault, "count": 1})
    first = client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key, "o-1"))
    assert first.status_code == 503
    error = first.get_json()["error"]
    assert error["code"] == "PSP_UNAVAILABLE"
    assert first.headers["Retry-After"]
    with app.app_context():
        payment = db.session.execute(select(Payment)).scalar_one()
        assert payment.status == "CREATED" and payment.checkout_url is None
        assert error["details"]["payment_id"] == payment.public_id

    retry = client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key, "o-1"))
    assert retry.status_code == 201, retry.get_json()
    assert retry.get_json()["id"] == error["details"]["payment_id"]
    assert retry.get_json()["status"] == "INITIATED"
    assert len(checkout_sessions(emulator)) == 1
    assert count_rows(app, Payment) == 1


def test_a_retry_after_a_lost_answer_sends_the_identical_request_though_settings_changed(
    app, client, api_merchant, emulator, provider, monkeypatch
):
    """The PSP made the session but its answer was lost; PUBLIC_BASE_URL and the checkout TTL
    change before the retry. The retry sends the request the first attempt sent (the emulator,
    like Stripe, refuses another body under the same key), and gets that session."""
    from dataclasses import replace

    from app.payments.service import checkout_request
    from app.psp import PspError

    _, key = api_merchant
    base = app.config["PUBLIC_BASE_URL"].rstrip("/")
    emulator.control(
        "POST", "faults", {"kind": "lose_response", "count": 1, "path": "/v1/checkout/sessions"}
    )
    first = client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key, "f-1"))
    assert first.status_code == 503, first.get_json()
    [made] = checkout_sessions(emulator)  # the PSP did make it
    with app.app_context():
        payment = db.session.execute(select(Payment)).scalar_one()
        assert payment.status == "CREATED"
        frozen = checkout_request(payment)

    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", "https://moved.example.com")
    ttl = app.config["CHECKOUT_SESSION_TTL_SECONDS"]
    monkeypatch.setitem(app.config, "CHECKOUT_SESSION_TTL_SECONDS", ttl + 600)
    # What rebuilding the request from today's settings would send: the PSP refuses the key.
    with pytest.raises(PspError) as refused:
        provider.create_checkout_session(
            replace(frozen, success_url="https://moved.example.com/checkout/return/x")
        )
    assert refused.value.code == "IdempotencyError"

    retry = client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key, "f-1"))

    assert retry.status_code == 201, retry.get_json()
    body = retry.get_json()
    assert (body["status"], body["psp_session_id"]) == ("INITIATED", made["id"])
    assert [s["id"] for s in checkout_sessions(emulator)] == [made["id"]]
    assert made["success_url"] == (
        f"{base}/checkout/return/{body['id']}?session_id={{CHECKOUT_SESSION_ID}}"
    )
    assert made["cancel_url"] == f"{base}/checkout/cancel/{body['id']}"
    with app.app_context():
        stored = db.session.execute(select(Payment)).scalar_one()
        assert made["expires_at"] == int(stored.checkout_expires_at.replace(tzinfo=UTC).timestamp())
        assert stored.checkout_expires_at == (stored.created_at + timedelta(seconds=ttl)).replace(
            microsecond=0
        )


def test_a_payment_stored_before_requests_were_frozen_is_registered_from_todays_settings(
    app, api_merchant, emulator, provider
):
    """Rows from before migration 0012 have no frozen values: their registration computes them
    as it always did (created_at + TTL, the current PUBLIC_BASE_URL)."""
    from app.models import StatusSource
    from app.payments.service import register_with_psp

    merchant, _ = api_merchant
    with app.app_context():
        payment = new_payment(merchant.id, validate_create_params(create_body()))
        payment.checkout_expires_at = None
        payment.checkout_success_url = payment.checkout_cancel_url = None
        db.session.commit()
        registered = register_with_psp(payment.id, source=StatusSource.RECON)
        assert registered.status == "INITIATED"
        base = app.config["PUBLIC_BASE_URL"].rstrip("/")
        [session] = checkout_sessions(emulator)
        assert session["cancel_url"] == f"{base}/checkout/cancel/{registered.public_id}"
        ttl = timedelta(seconds=app.config["CHECKOUT_SESSION_TTL_SECONDS"])
        expected = (registered.created_at + ttl).replace(microsecond=0, tzinfo=UTC)
        assert session["expires_at"] == int(expected.timestamp())


def test_dead_psp_address_is_retryable_and_the_circuit_then_fails_fast(
    app, client, api_merchant, emulator, provider
):
    _, key = api_merchant
    good_client = provider.client
    from app.psp.stripe_adapter import StripeProvider

    dead = StripeProvider(
        "sk_test_x", api_base="http://127.0.0.1:1", webhook_secrets=[], max_network_retries=0
    )
    provider.client = dead.client
    fail_max = provider.breaker.fail_max
    try:
        for n in range(fail_max):
            r = client.post(
                "/api/v1/payments",
                json=create_body(merchant_reference=f"dead-{n}"),
                headers=auth_headers(key, f"dead-{n}"),
            )
            assert r.status_code == 503
        assert provider.breaker.current_state == "open"
        fast = client.post(
            "/api/v1/payments",
            json=create_body(merchant_reference="dead-fast"),
            headers=auth_headers(key, "dead-fast"),
        )
        assert fast.status_code == 503
        assert fast.headers["Retry-After"] == str(app.config["PSP_BREAKER_RESET_SECONDS"])
    finally:
        provider.client = good_client
        provider.breaker.close()
    assert count_rows(app, Payment, Payment.status == "CREATED") == fail_max + 1
    retry = client.post(
        "/api/v1/payments",
        json=create_body(merchant_reference="dead-fast"),
        headers=auth_headers(key, "dead-fast"),
    )
    assert retry.status_code == 201
    assert len(checkout_sessions(emulator)) == 1


def committed_before_the_psp_call(merchant_id: int, idempotency_key: str) -> IdempotencyRecord:
    """What a create request with create_body() has committed before it calls the PSP: the CREATED
    payment and its in-progress idempotency record. Needs an app context."""
    data = validate_create_params(create_body())
    payment = new_payment(merchant_id, data)
    record = idempotency.new_record(
        merchant_id,
        idempotency_key,
        method=CREATE_METHOD,
        path=CREATE_PATH,
        request_fingerprint=fingerprint(data),
    )
    record.payment = payment
    db.session.commit()
    return record


def test_a_crash_after_the_insert_is_finished_by_a_retry_with_the_same_key(
    app, client, api_merchant, emulator, provider
):
    """The first request died between its commit and the PSP call: its lease runs out."""
    merchant_row, key = api_merchant
    with app.app_context():
        record = committed_before_the_psp_call(merchant_row.id, "crash-1")
        old = utcnow() - timedelta(minutes=5)
        record.updated_at = old
        db.session.commit()

    retry = client.post(
        "/api/v1/payments", json=create_body(), headers=auth_headers(key, "crash-1")
    )
    assert retry.status_code == 201
    assert retry.get_json()["status"] == "INITIATED"
    assert len(checkout_sessions(emulator)) == 1


def test_a_request_whose_twin_is_still_working_gets_request_in_progress(
    app, client, api_merchant, provider
):
    merchant_row, key = api_merchant
    with app.app_context():
        committed_before_the_psp_call(merchant_row.id, "busy-1")
    saved_wait = app.config["IDEMPOTENCY_WAIT_SECONDS"]
    app.config["IDEMPOTENCY_WAIT_SECONDS"] = 0.3
    try:
        r = client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key, "busy-1"))
    finally:
        app.config["IDEMPOTENCY_WAIT_SECONDS"] = saved_wait
    assert r.status_code == 409
    assert r.get_json()["error"]["code"] == "REQUEST_IN_PROGRESS"
    assert r.headers["Retry-After"] == "1"
    assert count_rows(app, PaymentStatusChange) == 1  # nothing half-made beyond the CREATED row


def test_create_payment_in_process_returns_an_initiated_payment(app, api_merchant, provider):
    from app.payments.service import create_payment

    merchant_row, _ = api_merchant
    with app.test_request_context():
        payment = create_payment(
            merchant_row.id, create_body(merchant_reference="shop-7"), idempotency_key=None
        )
        assert payment.status == "INITIATED" and payment.checkout_url


def test_create_payment_in_process_validates_like_the_api(app, api_merchant, provider):
    from app.errors import PayBridgeError
    from app.payments.service import create_payment

    merchant_row, _ = api_merchant
    with app.test_request_context(), pytest.raises(PayBridgeError) as caught:
        create_payment(merchant_row.id, create_body(amount=0), idempotency_key=None)
    assert caught.value.code == "VALIDATION_ERROR" and caught.value.param == "amount"


def test_recurring_payment_is_registered_as_a_subscription(
    app, client, api_merchant, emulator, provider
):
    _, key = api_merchant
    r = client.post(
        "/api/v1/payments",
        json=create_body(payment_type="RECC", interval="month"),
        headers=auth_headers(key),
    )
    assert r.status_code == 201, r.get_json()
    assert (r.get_json()["interval"], r.get_json()["interval_count"]) == ("month", 1)
    (session,) = checkout_sessions(emulator)
    assert session["mode"] == "subscription"


def test_reconciliation_finishes_a_created_payment_and_the_client_retry_then_replays(
    app, client, api_merchant, emulator, provider
):
    from app.models import StatusSource
    from app.payments.service import register_with_psp

    _, key = api_merchant
    emulator.control("POST", "faults", {"kind": "http_500", "count": 1})
    first = client.post(
        "/api/v1/payments", json=create_body(), headers=auth_headers(key, "recon-1")
    )
    assert first.status_code == 503
    with app.app_context():
        payment_id = db.session.execute(select(Payment.id)).scalar_one()
        payment = register_with_psp(payment_id, source=StatusSource.RECON)
        assert payment.status == "INITIATED"
        assert payment.history[-1].source == "recon"
        again = register_with_psp(payment_id, source=StatusSource.RECON)  # a no-op now
        assert again.status_version == payment.status_version
    retry = client.post(
        "/api/v1/payments", json=create_body(), headers=auth_headers(key, "recon-1")
    )
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json()["status"] == "INITIATED"
    assert len(checkout_sessions(emulator)) == 1


def test_concurrent_creates_with_one_reference_and_different_keys(
    app, live_server, api_merchant, provider
):
    _, key = api_merchant

    def create(n: int) -> requests.Response:
        return requests.post(
            f"{live_server.url}/api/v1/payments",
            json=create_body(),
            headers=auth_headers(key, f"ref-race-{n}"),
            timeout=30,
        )

    results = at_once([lambda n=n: create(n) for n in range(8)], timeout=60)
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201] + [409] * 7, statuses
    winner = next(r for r in results if r.status_code == 201).json()["id"]
    for r in results:
        if r.status_code == 409:
            assert r.json()["error"]["code"] == "DUPLICATE_MERCHANT_REFERENCE"
            assert r.json()["error"]["details"]["payment_id"] == winner
    assert count_rows(app, Payment) == 1


def test_payment_expired_while_its_registration_is_in_flight_leaves_no_open_session(
    app, client, api_merchant, emulator, provider
):
    """The PSP answers after the merchant stopped the payment: the new session is expired."""
    from app.models import StatusSource
    from app.payments.service import expire_payment

    _, key = api_merchant
    emulator.control(
        "POST", "faults", {"kind": "hang", "seconds": 1.5, "path": "/v1/checkout/sessions"}
    )
    answers = []
    creating = threading.Thread(
        target=lambda: answers.append(
            client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key, "race-x"))
        )
    )
    creating.start()
    wait_until(lambda: count_rows(app, Payment) > 0, what="the payment row", timeout=5)
    with app.app_context():
        payment_id = db.session.execute(select(Payment.id)).scalar_one()
        stopped = expire_payment(payment_id, source=StatusSource.API, reason="merchant stopped it")
        assert stopped.status == "FAILED"
    creating.join(20)
    assert answers[0].status_code == 201
    assert answers[0].get_json()["status"] == "FAILED"
    (session,) = checkout_sessions(emulator)
    assert session["status"] == "expired"


def test_psp_calls_and_failures_show_in_metrics(app, client, api_merchant, emulator, provider):
    _, key = api_merchant
    emulator.control("POST", "faults", {"kind": "http_500", "count": 1})
    client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key, "m-1"))
    client.post("/api/v1/payments", json=create_body(), headers=auth_headers(key, "m-1"))
    text = client.get("/metrics").get_data(as_text=True)
    assert 'paybridge_psp_call_seconds_count{operation="create_session",psp="stripe"}' in text
    assert (
        'paybridge_psp_errors_total{kind="PspUnavailable",operation="create_session",psp="stripe"}'
        in text
    )
    assert (
        'paybridge_payment_transitions_total{from_status="CREATED",source="api",'
        'to_status="INITIATED"}' in text
    )


# Created 2 h ago: its 1 h window has closed. Created 40 min ago: 20 min are left, under the
# 30 min Stripe wants of a new session, so the PSP would refuse the registration as invalid.
@pytest.mark.parametrize("age", [timedelta(hours=2), timedelta(minutes=40)])
def test_a_payment_left_created_past_its_checkout_window_fails_as_expired(
    app, api_merchant, emulator, provider, age
):
    from app.models import StatusSource
    from app.payments.service import checkout_expiry, new_payment, register_with_psp
    from app.payments.validation import validate_create_params

    merchant_row, _ = api_merchant
    with app.app_context():
        payment = new_payment(merchant_row.id, validate_create_params(create_body()))
        payment.created_at = utcnow() - age
        payment.checkout_expires_at = checkout_expiry(payment.created_at)  # as frozen then
        db.session.commit()
        result = register_with_psp(payment.id, source=StatusSource.RECON)
        assert result.status == "FAILED"
        assert result.failure_code == "expired"
        assert result.history[-1].source == "recon"
    assert checkout_sessions(emulator) == []
