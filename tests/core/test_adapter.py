"""The Stripe adapter against the emulator over HTTP, through the real `stripe` SDK."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
from datetime import timedelta

import pytest
import stripe
from stripe._api_version import _ApiVersion

from app.models import utcnow
from app.psp import stripe_adapter
from app.psp.base import (
    CheckoutRequest,
    PspError,
    PspInvalidState,
    PspNotFound,
    PspRejected,
    PspUnavailable,
    WebhookVerificationError,
)
from app.psp.stripe_adapter import StripeProvider
from tests.support.psp import checkout_sessions

SECRET = "whsec_adapter_test"
OLD_SECRET = "whsec_adapter_old"


pytestmark = pytest.mark.usefixtures("emu")


def make_provider(emulator, **overrides) -> StripeProvider:
    options = dict(
        api_base=emulator.url,
        webhook_secrets=[SECRET, OLD_SECRET],
        webhook_tolerance=300,
        timeout_seconds=5,
        max_network_retries=0,
        breaker_fail_max=5,
        breaker_reset_seconds=30,
    )
    options.update(overrides)
    return StripeProvider(emulator.api_key, **options)


def checkout_request(n: int = 1, **overrides) -> CheckoutRequest:
    values = dict(
        payment_id=f"pay_adaptertest{n}",
        merchant_reference=f"order-{n}",
        idempotency_key=f"paybridge-create-pay_adaptertest{n}-{time.time_ns()}",
        amount=1999,
        currency="EUR",
        description="Blue widget",
        customer_email="shopper@example.com",
        success_url="http://127.0.0.1:5000/checkout/return/x?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="http://127.0.0.1:5000/checkout/cancel/x",
        expires_at=(utcnow() + timedelta(hours=1)).replace(microsecond=0),
        metadata={"cart": "c-17"},
    )
    values.update(overrides)
    return CheckoutRequest(**values)


def test_create_opens_a_session_with_our_ids_and_a_served_checkout_page(emulator):
    provider = make_provider(emulator)
    request = checkout_request()
    session = provider.create_checkout_session(request)

    assert session.id.startswith("cs_test_")
    assert (session.status, session.payment_status) == ("open", "unpaid")
    assert session.amount_total == 1999 and session.currency == "EUR"
    assert session.client_reference_id == "pay_adaptertest1"
    assert session.metadata == {
        "paybridge_payment_id": "pay_adaptertest1",
        "merchant_reference": "order-1",
        "cart": "c-17",
    }
    assert session.expires_at == request.expires_at
    with urllib.request.urlopen(session.url, timeout=10) as page:
        assert page.status == 200
        assert b"Blue widget" in page.read()
    raw = provider.client.v1.checkout.sessions.retrieve(session.id)
    assert raw.mode == "payment"
    assert raw.customer_email == "shopper@example.com"
    assert raw.success_url == request.success_url


def test_same_idempotency_key_gives_the_same_session_never_a_second(emulator):
    provider = make_provider(emulator)
    request = checkout_request()
    first = provider.create_checkout_session(request)
    second = provider.create_checkout_session(request)
    assert first.id == second.id
    listed = list(provider.list_checkout_sessions(utcnow() - timedelta(hours=1)))
    assert [s.id for s in listed] == [first.id]


def test_recurring_payment_opens_a_subscription_session(emulator):
    provider = make_provider(emulator)
    session = provider.create_checkout_session(checkout_request(interval="month", interval_count=3))
    raw = provider.client.v1.checkout.sessions.retrieve(session.id, {"expand": ["line_items"]})
    assert raw.mode == "subscription"
    recurring = raw.line_items.data[0].price.recurring
    assert (recurring.interval, recurring.interval_count) == ("month", 3)


def test_retrieve_after_payment_reports_paid_with_the_intent_status(emulator):
    provider = make_provider(emulator)
    session = provider.create_checkout_session(checkout_request())
    emulator.control("POST", f"checkout/sessions/{session.id}/pay", {"card": "4242424242424242"})
    paid = provider.retrieve_checkout_session(session.id)
    assert (paid.status, paid.payment_status) == ("complete", "paid")
    assert paid.payment_intent_id.startswith("pi_")
    assert paid.payment_intent_status == "succeeded"
    assert paid.url is None


def test_retrieve_reports_a_failed_delayed_payment_through_the_intent(emulator):
    provider = make_provider(emulator)
    session = provider.create_checkout_session(checkout_request())
    emulator.control(
        "POST",
        f"checkout/sessions/{session.id}/pay",
        {"iban": "DE62370400440532013001"},
    )
    emulator.control("POST", f"checkout/sessions/{session.id}/settle", {"outcome": "failed"})
    failed = provider.retrieve_checkout_session(session.id)
    assert (failed.status, failed.payment_status) == ("complete", "unpaid")
    assert failed.payment_intent_status == "requires_payment_method"


def test_retrieve_unknown_session_is_not_found(emulator):
    with pytest.raises(PspNotFound) as caught:
        make_provider(emulator).retrieve_checkout_session("cs_test_doesnotexist")
    assert caught.value.code == "resource_missing"


def test_expire_open_session_then_expiring_again_is_an_invalid_state(emulator):
    provider = make_provider(emulator)
    session = provider.create_checkout_session(checkout_request())
    expired = provider.expire_checkout_session(session.id)
    assert expired.status == "expired" and expired.url is None
    with pytest.raises(PspInvalidState):
        provider.expire_checkout_session(session.id)
    with pytest.raises(PspNotFound):
        provider.expire_checkout_session("cs_test_doesnotexist")


def test_psp_rejecting_the_request_is_rejected_with_its_param(emulator):
    provider = make_provider(emulator)
    too_soon = (utcnow() + timedelta(minutes=5)).replace(microsecond=0)
    with pytest.raises(PspRejected) as caught:
        provider.create_checkout_session(checkout_request(expires_at=too_soon))
    assert caught.value.http_status == 400
    assert "expires_at" in caught.value.message


@pytest.mark.parametrize("kind", ["http_500", "http_429", "lose_response"])
def test_server_errors_rate_limits_and_lost_answers_are_retryable(emulator, kind):
    provider = make_provider(emulator)
    emulator.control("POST", "faults", {"kind": kind, "count": 1})
    request = checkout_request()
    with pytest.raises(PspUnavailable) as caught:
        provider.create_checkout_session(request)
    assert caught.value.retryable
    # The retry with the same key finishes it; a lost answer was stored and is replayed.
    session = provider.create_checkout_session(request)
    listed = list(provider.list_checkout_sessions(utcnow() - timedelta(hours=1)))
    assert [s.id for s in listed] == [session.id]


def test_unreachable_psp_is_unavailable(emulator):
    provider = make_provider(emulator, api_base="http://127.0.0.1:1", timeout_seconds=1)
    with pytest.raises(PspUnavailable):
        provider.retrieve_checkout_session("cs_test_x")


def test_wrong_secret_key_is_unavailable_not_a_rejection(emulator):
    provider = StripeProvider(
        "not_a_key", api_base=emulator.url, webhook_secrets=[SECRET], max_network_retries=0
    )
    with pytest.raises(PspUnavailable) as caught:
        provider.create_checkout_session(checkout_request())
    assert caught.value.http_status == 401


def test_circuit_opens_after_repeated_outages_and_fails_fast(emulator, monkeypatch):
    provider = make_provider(
        emulator, api_base="http://127.0.0.1:1", breaker_fail_max=3, timeout_seconds=1
    )
    attempts = []  # each HTTP request the SDK sends (a stopwatch would fail on a busy machine)
    send = stripe.RequestsClient.request

    def counted(self, *args, **kwargs):
        attempts.append(args[:2])
        return send(self, *args, **kwargs)

    monkeypatch.setattr(stripe.RequestsClient, "request", counted)
    for _ in range(3):
        with pytest.raises(PspUnavailable) as caught:
            provider.retrieve_checkout_session("cs_test_x")
    assert len(attempts) == 3
    assert provider.breaker.current_state == "open"
    with pytest.raises(PspUnavailable) as caught:
        provider.retrieve_checkout_session("cs_test_x")
    assert caught.value.code == "circuit_open"
    assert len(attempts) == 3  # refused without trying the network: failing fast


def test_circuit_half_opens_after_the_reset_time_and_closes_on_success(emulator):
    provider = make_provider(emulator, breaker_fail_max=2, breaker_reset_seconds=0.3)
    emulator.control("POST", "faults", {"kind": "http_500", "count": 2})
    for _ in range(2):
        with pytest.raises(PspUnavailable):
            provider.create_checkout_session(checkout_request())
    assert provider.breaker.current_state == "open"
    time.sleep(0.35)
    provider.create_checkout_session(checkout_request())
    assert provider.breaker.current_state == "closed"


def test_answers_that_are_not_outages_do_not_trip_the_circuit(emulator):
    provider = make_provider(emulator, breaker_fail_max=2)
    for _ in range(4):
        with pytest.raises(PspNotFound):
            provider.retrieve_checkout_session("cs_test_missing")
    assert provider.breaker.current_state == "closed"
    assert provider.breaker.fail_counter == 0


def test_list_sessions_follows_every_page(emulator, monkeypatch):
    monkeypatch.setattr(stripe_adapter, "PAGE_SIZE", 2)
    provider = make_provider(emulator)
    since = utcnow() - timedelta(minutes=1)
    created = [provider.create_checkout_session(checkout_request(n)).id for n in range(5)]
    listed = [s.id for s in provider.list_checkout_sessions(since)]
    assert sorted(listed) == sorted(created)
    assert len(listed) == 5


def test_list_events_filters_by_type_and_parses_the_session(emulator):
    provider = make_provider(emulator)
    since = utcnow() - timedelta(minutes=1)
    kept = provider.create_checkout_session(checkout_request(1))
    gone = provider.create_checkout_session(checkout_request(2))
    provider.expire_checkout_session(gone.id)
    emulator.control("POST", f"checkout/sessions/{kept.id}/pay", {"card": "4242424242424242"})
    events = list(provider.list_events(["checkout.session.expired"], since))
    assert [e.type for e in events] == ["checkout.session.expired"]
    assert events[0].session.id == gone.id
    assert events[0].session.status == "expired"
    assert events[0].raw["id"] == events[0].id


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def event_body() -> bytes:
    session = {
        "id": "cs_test_abc",
        "object": "checkout.session",
        "status": "complete",
        "payment_status": "paid",
        "url": None,
        "amount_total": 500,
        "currency": "usd",
        "client_reference_id": "pay_x",
        "metadata": {"paybridge_payment_id": "pay_x"},
        "payment_intent": "pi_123",
        "subscription": None,
        "expires_at": 1800000000,
        "created": 1799990000,
    }
    event = {
        "id": "evt_1",
        "object": "event",
        "type": "checkout.session.completed",
        "created": 1799990100,
        "data": {"object": session},
    }
    return json.dumps(event).encode()


def test_webhook_signed_with_either_secret_is_verified_and_parsed(emulator):
    provider = make_provider(emulator)
    body = event_body()
    for secret in (SECRET, OLD_SECRET):
        event = provider.verify_webhook(body, sign(body, secret))
        assert (event.id, event.type) == ("evt_1", "checkout.session.completed")
        assert event.session.id == "cs_test_abc"
        assert event.session.currency == "USD"
        assert event.session.payment_intent_id == "pi_123"
        assert event.raw["data"]["object"]["id"] == "cs_test_abc"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "t=1,v1=00",
        "stale",
        "wrong-secret",
    ],
)
def test_webhook_with_a_bad_signature_is_refused(emulator, header):
    provider = make_provider(emulator)
    body = event_body()
    if header == "stale":
        header = sign(body, SECRET, int(time.time()) - 301)
    elif header == "wrong-secret":
        header = sign(body, "whsec_someone_else")
    with pytest.raises(WebhookVerificationError):
        provider.verify_webhook(body, header)


def test_webhook_that_is_not_json_is_refused_even_when_signed(emulator):
    provider = make_provider(emulator)
    body = b"not json"
    with pytest.raises(WebhookVerificationError):
        provider.verify_webhook(body, sign(body, SECRET))


def test_error_mapping_keeps_unknown_stripe_errors_non_retryable():
    import stripe

    mapped = stripe_adapter.map_stripe_error(stripe.IdempotencyError("keys differ"))
    assert type(mapped) is PspError and not mapped.retryable


# Production's network settings (STRIPE_MAX_NETWORK_RETRIES=2, a timeout): the SDK's own retries
# carry the same idempotency key, so a failure on the way never makes a second session.
@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "http_500"},  # answered before any work: the retry does it
        {"kind": "lose_response"},  # done, answer lost: the retry replays it
        {"kind": "hang", "seconds": 1.5},  # past the 1 s timeout: 409 while in flight, then replay
    ],
    ids=lambda f: f["kind"],
)
def test_sdk_retries_with_the_same_key_make_exactly_one_session(emulator, fault):
    provider = make_provider(emulator, timeout_seconds=1, max_network_retries=2)
    emulator.control("POST", "faults", {**fault, "path": "/v1/checkout/sessions"})
    request = checkout_request(7)
    session = provider.create_checkout_session(request)
    assert session.status == "open"
    assert [s["id"] for s in checkout_sessions(emulator, "pay_adaptertest7")] == [session.id]
    assert emulator.control("GET", "faults") == {"data": []}  # the fault was really met
    again = provider.create_checkout_session(request)  # a later PayBridge retry: same session
    assert again.id == session.id


def test_every_call_sends_the_pinned_api_version_whatever_the_sdk_defaults_to(emu, monkeypatch):
    # An SDK upgrade moves its default version (what StripeClient sends unless told); the
    # adapter's own pin must win.
    monkeypatch.setattr(_ApiVersion, "CURRENT", "2099-01-01.future")
    monkeypatch.setattr(stripe, "api_version", "2099-01-01.future")
    provider = make_provider(emu)
    session = provider.create_checkout_session(checkout_request(91))
    provider.retrieve_checkout_session(session.id)
    list(provider.list_checkout_sessions(utcnow() - timedelta(minutes=5)))
    provider.key_livemode()

    seen = emu.control("GET", "requests")["data"]
    assert {r["path"] for r in seen} >= {"/v1/checkout/sessions", "/v1/balance"}
    assert {r["stripe_version"] for r in seen} == {stripe_adapter.STRIPE_API_VERSION}
    assert stripe_adapter.STRIPE_API_VERSION == "2026-10-28.endive"


def test_the_sdk_reads_the_proxy_settings_once_for_the_api_address(monkeypatch):
    """The environment's proxy for Stripe's address (HTTPS_PROXY, unless NO_PROXY names it) is
    fixed on the SDK's session, which then never reads the environment again per call."""
    from app.psp.stripe_adapter import _http_client

    monkeypatch.setenv("HTTPS_PROXY", "http://egress.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session = _http_client("https://api.stripe.com", 10)._session
    assert session.trust_env is False
    assert session.proxies.get("https") == "http://egress.internal:3128"

    monkeypatch.setenv("NO_PROXY", "api.stripe.com")
    assert _http_client("https://api.stripe.com", 10)._session.proxies == {}
