"""The metrics deploy/prometheus/alerts.yml reads, each moved by the real event it reports:
payments past their checkout's expiry that nothing finished, the circuit breaker towards the
PSP opening and closing, webhooks refused for their signature."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from app.extensions import db
from app.models import Payment, PaymentStatus, utcnow
from app.psp.base import PspUnavailable
from app.psp.stripe_adapter import StripeProvider
from app.runtime.scrape import overdue_grace
from tests.support import factories
from tests.support.waiting import wait_until
from tests.webhooks.helpers import stripe_headers


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_overdue_payments_are_the_unfinished_ones_expired_longer_ago_than_recon_needs(
    app, client, merchant
):
    grace = overdue_grace(app.config)
    lifetime = timedelta(seconds=app.config["CHECKOUT_SESSION_TTL_SECONDS"])
    now = utcnow()

    def payment(
        status: PaymentStatus,
        *,
        age: timedelta,
        expired_ago: timedelta | None,
        livemode: bool = False,
    ) -> None:
        with app.app_context():
            row = factories.record_payment(merchant.id, status, livemode=livemode)
            row.created_at = now - age
            row.psp_expires_at = None if expired_ago is None else now - expired_ago
            db.session.commit()

    minute = timedelta(minutes=1)
    payment(PaymentStatus.INITIATED, age=3 * lifetime, expired_ago=grace + minute)  # overdue
    payment(PaymentStatus.INITIATED, age=lifetime + grace, expired_ago=grace - minute)  # waits
    payment(PaymentStatus.PENDING, age=3 * lifetime, expired_ago=grace + minute)  # paid
    payment(PaymentStatus.SUCCESS, age=3 * lifetime, expired_ago=grace + minute)  # final
    payment(PaymentStatus.CREATED, age=lifetime + grace + minute, expired_ago=None)  # overdue
    payment(PaymentStatus.CREATED, age=lifetime, expired_ago=None)  # recon may still register
    for _ in range(2):  # real money: counted apart
        live_overdue = {"age": 3 * lifetime, "expired_ago": grace + minute, "livemode": True}
        payment(PaymentStatus.INITIATED, **live_overdue)

    text = client.get("/metrics").get_data(as_text=True)
    assert 'paybridge_payments_overdue{mode="test",status="INITIATED"} 1.0' in text
    assert 'paybridge_payments_overdue{mode="test",status="CREATED"} 1.0' in text
    assert 'paybridge_payments_overdue{mode="live",status="INITIATED"} 2.0' in text
    assert 'paybridge_payments_overdue{mode="live",status="CREATED"} 0.0' in text
    with app.app_context():
        assert db.session.query(Payment).count() == 8


def test_the_breaker_gauge_and_counter_follow_it_opening_reopening_and_closing(app):
    def unreachable(livemode: bool) -> StripeProvider:
        return StripeProvider(
            "sk_live_breaker" if livemode else "sk_test_breaker",
            livemode=livemode,
            api_base="http://127.0.0.1:1",  # nothing listens: every call fails to connect
            webhook_secrets=["whsec_breaker"],
            timeout_seconds=1,
            max_network_retries=0,
            breaker_fail_max=2,
            breaker_reset_seconds=0.2,
        )

    def is_open(mode: str) -> float:
        return sample("paybridge_psp_circuit_open", psp="stripe", mode=mode)

    def openings(mode: str) -> float:
        return sample("paybridge_psp_circuit_opened_total", psp="stripe", mode=mode)

    provider, live = unreachable(livemode=False), unreachable(livemode=True)
    before = {mode: openings(mode) for mode in ("test", "live")}
    assert is_open("test") == is_open("live") == 0

    for _ in range(2):
        with pytest.raises(PspUnavailable):
            provider.retrieve_checkout_session("cs_test_breaker")
    assert (is_open("test"), openings("test")) == (1, before["test"] + 1)
    assert (is_open("live"), openings("live")) == (0, before["live"])  # each mode its own

    with pytest.raises(PspUnavailable, match="circuit open"):
        provider.retrieve_checkout_session("cs_test_breaker")  # refused without a call
    started = time.monotonic()
    wait_until(lambda: time.monotonic() - started > 0.25, what="the reset timeout", interval=0.05)
    with pytest.raises(PspUnavailable):
        provider.retrieve_checkout_session("cs_test_breaker")  # the trial call fails: open again
    assert openings("test") == before["test"] + 2

    provider.breaker.close()
    assert is_open("test") == 0
    assert live.breaker.current_state == "closed"


def test_a_webhook_with_a_bad_signature_is_counted_apart_from_an_unreadable_one(client):
    def rejected(reason: str) -> float:
        return sample("paybridge_webhook_rejected_total", psp="stripe", reason=reason)

    signature_before, payload_before = rejected("signature"), rejected("payload")
    forged = client.post(
        "/webhooks/stripe",
        data=b'{"id": "evt_forged"}',
        headers={"Stripe-Signature": "t=1,v1=deadbeef", "Content-Type": "application/json"},
    )
    unsigned = client.post("/webhooks/stripe", data=b"{}")
    body = b'{"signed": "but no event"}'
    unreadable = client.post("/webhooks/stripe", data=body, headers=stripe_headers(body))
    assert forged.status_code == unsigned.status_code == unreadable.status_code == 400
    assert unreadable.get_json()["error"]["code"] == "WEBHOOK_PAYLOAD_INVALID"
    assert rejected("signature") == signature_before + 2
    assert rejected("payload") == payload_before + 1
