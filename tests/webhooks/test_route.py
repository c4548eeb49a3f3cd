"""POST /webhooks/stripe over the test client and real HTTP: signatures, storage, 503s."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

import pytest
import requests

from app.models import PaymentStatus
from tests.support.concurrency import at_once
from tests.support.factories import PaymentRef
from tests.webhooks.helpers import (
    WEBHOOK_SECRET,
    counts,
    load_payment,
    sign,
    stripe_event_body,
    stripe_headers,
)

URL = "/webhooks/stripe"
COMPLETED = "checkout.session.completed"


@contextmanager
def webhook_secrets(app, secrets: list[str]):
    """Configure the endpoint secrets (a rotation) for the block; rebuild the adapter."""
    saved = app.config["STRIPE_TEST_WEBHOOK_SECRETS"]
    app.config["STRIPE_TEST_WEBHOOK_SECRETS"] = secrets
    app.extensions.pop("paybridge_psp", None)
    try:
        yield
    finally:
        app.config["STRIPE_TEST_WEBHOOK_SECRETS"] = saved
        app.extensions.pop("paybridge_psp", None)


def test_valid_signature_is_stored_applied_and_acknowledged(app, client, make_payment):
    payment = make_payment()
    body = stripe_event_body(COMPLETED, payment)

    response = client.post(URL, data=body, headers=stripe_headers(body))

    assert response.status_code == 200
    assert response.get_json() == {"received": True, "outcome": "applied"}
    stored = load_payment(app, payment.id)
    assert stored.status == "SUCCESS"
    assert stored.history[-1].source == "webhook"
    assert counts(app, payment.id) == {"events": 1, "notifications": 1, "conflicts": 0}


def test_a_redelivery_answers_200_and_changes_nothing(app, client, make_payment):
    payment = make_payment()
    body = stripe_event_body(COMPLETED, payment)
    first = client.post(URL, data=body, headers=stripe_headers(body))
    # Stripe signs every retry afresh; the event id is what makes it the same event.
    again = client.post(
        URL, data=body, headers=stripe_headers(body, timestamp=int(time.time()) + 1)
    )
    assert first.status_code == again.status_code == 200
    assert again.get_json()["outcome"] == "applied"  # the stored row's outcome
    assert load_payment(app, payment.id).status_version == 3
    assert counts(app, payment.id) == {"events": 1, "notifications": 1, "conflicts": 0}


@pytest.mark.parametrize(
    ("make_headers", "code"),
    [
        (lambda body: {}, "WEBHOOK_SIGNATURE_INVALID"),
        (lambda body: {"Stripe-Signature": ""}, "WEBHOOK_SIGNATURE_INVALID"),
        (lambda body: {"Stripe-Signature": "garbage"}, "WEBHOOK_SIGNATURE_INVALID"),
        (lambda body: stripe_headers(body, "whsec_not_ours"), "WEBHOOK_SIGNATURE_INVALID"),
        (
            lambda body: stripe_headers(body, timestamp=int(time.time()) - 301),
            "WEBHOOK_SIGNATURE_INVALID",
        ),
        (
            lambda body: {"Stripe-Signature": sign(body + b" ")},  # signed other bytes
            "WEBHOOK_SIGNATURE_INVALID",
        ),
    ],
    ids=["missing", "empty", "malformed", "wrong-secret", "stale", "tampered-body"],
)
def test_unverified_deliveries_are_rejected_and_nothing_stored(
    app, client, make_payment, make_headers, code, caplog
):
    payment = make_payment()
    body = stripe_event_body(COMPLETED, payment)
    route_log = logging.getLogger("app.psp_events.intake")
    caplog.clear()  # only what the rejected delivery logs
    with caplog.at_level(logging.WARNING, logger=route_log.name):
        response = client.post(URL, data=body, headers=make_headers(body))

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code
    assert counts(app) == {"events": 0, "notifications": 0, "conflicts": 0}
    assert load_payment(app, payment.id).status == "INITIATED"
    logged = caplog.text
    assert "stripe webhook rejected" in logged
    assert WEBHOOK_SECRET not in logged and payment.public_id not in logged


def test_stale_but_within_tolerance_is_accepted(app, client, make_payment):
    payment = make_payment()
    body = stripe_event_body(COMPLETED, payment)
    headers = stripe_headers(body, timestamp=int(time.time()) - 250)
    assert client.post(URL, data=body, headers=headers).status_code == 200


@pytest.mark.parametrize(
    "body",
    [b"not json at all", b"[1, 2, 3]", b'{"object": "event"}', b'{"id": "evt_1", "type": 5'],
    ids=["text", "array", "no-id", "truncated"],
)
def test_signed_body_that_is_not_an_event_is_a_payload_error(app, client, body):
    response = client.post(URL, data=body, headers=stripe_headers(body))
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "WEBHOOK_PAYLOAD_INVALID"
    assert counts(app)["events"] == 0


def test_two_secrets_during_rotation_both_verify(app, client, make_payment):
    old, new = "whsec_old_rotation", "whsec_new_rotation"
    first, second, third = make_payment(), make_payment(), make_payment()
    with webhook_secrets(app, [new, old]):
        body_old = stripe_event_body(COMPLETED, first)
        body_new = stripe_event_body(COMPLETED, second)
        body_bad = stripe_event_body(COMPLETED, third)
        assert (
            client.post(URL, data=body_old, headers=stripe_headers(body_old, old)).status_code
            == 200
        )
        assert (
            client.post(URL, data=body_new, headers=stripe_headers(body_new, new)).status_code
            == 200
        )
        rejected = client.post(URL, data=body_bad, headers=stripe_headers(body_bad))
        assert rejected.status_code == 400
    assert load_payment(app, first.id).status == "SUCCESS"
    assert load_payment(app, second.id).status == "SUCCESS"
    assert load_payment(app, third.id).status == "INITIATED"


def test_a_header_carrying_signatures_for_both_secrets_verifies(app, client, make_payment):
    payment = make_payment()
    body = stripe_event_body(COMPLETED, payment)
    t = int(time.time())
    v1_other = sign(body, "whsec_other", t).split(",")[1]
    header = sign(body, WEBHOOK_SECRET, t) + "," + v1_other + ",v0=ignored"
    with webhook_secrets(app, ["whsec_other", WEBHOOK_SECRET]):
        response = client.post(URL, data=body, headers={"Stripe-Signature": header})
    assert response.status_code == 200


def test_webhook_needs_no_csrf_token_and_no_session(app, make_payment):
    assert app.config["WTF_CSRF_ENABLED"] is True
    payment = make_payment()
    body = stripe_event_body(COMPLETED, payment)
    fresh = app.test_client(use_cookies=False)
    assert fresh.post(URL, data=body, headers=stripe_headers(body)).status_code == 200


def test_unknown_session_and_other_types_answer_200(app, client):
    stranger = PaymentRef(
        public_id="pay_stranger",
        session_id="cs_test_stranger",
        reference="x",
        amount=100,
        currency="EUR",
    )
    body = stripe_event_body(COMPLETED, stranger)
    response = client.post(URL, data=body, headers=stripe_headers(body))
    assert response.get_json() == {"received": True, "outcome": "unknown_session"}
    other = stripe_event_body("payment_intent.created", stranger)
    response = client.post(URL, data=other, headers=stripe_headers(other))
    assert response.get_json() == {"received": True, "outcome": "unhandled_type"}
    assert counts(app)["events"] == 2


def test_amount_mismatch_is_flagged_over_http(app, client, make_payment):
    payment = make_payment(amount=1999)
    body = stripe_event_body(COMPLETED, payment, amount_total=19)
    response = client.post(URL, data=body, headers=stripe_headers(body))
    assert response.get_json() == {"received": True, "outcome": "mismatch"}
    assert load_payment(app, payment.id).status == "INITIATED"
    assert counts(app, payment.id)["conflicts"] == 1


def test_paid_after_failed_shows_in_metrics(app, client, make_payment):
    payment = make_payment(PaymentStatus.FAILED)
    body = stripe_event_body(COMPLETED, payment)
    response = client.post(URL, data=body, headers=stripe_headers(body))
    assert response.get_json()["outcome"] == "conflict"
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'paybridge_payment_conflicts_total{kind="paid_after_failed"}' in metrics


def test_same_event_ten_times_concurrently_over_http(app, live_server, make_payment):
    payment = make_payment()
    body = stripe_event_body(COMPLETED, payment)
    headers = stripe_headers(body)

    def deliver():
        return requests.post(live_server.url + URL, data=body, headers=headers, timeout=20)

    answers = at_once([deliver] * 10, timeout=30)
    assert [r.status_code for r in answers] == [200] * 10
    assert {r.json()["outcome"] for r in answers} == {"applied"}
    stored = load_payment(app, payment.id)
    assert [(h.from_status, h.to_status) for h in stored.history][-1] == ("INITIATED", "SUCCESS")
    assert len(stored.history) == 3
    assert counts(app, payment.id) == {"events": 1, "notifications": 1, "conflicts": 0}


def test_database_down_answers_503_so_stripe_retries(app, dead_db_app, make_payment):
    payment = make_payment()
    body = stripe_event_body(COMPLETED, payment)
    response = dead_db_app.test_client().post(URL, data=body, headers=stripe_headers(body))
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    # Nothing reached the real database either; a retry once it is back applies the event.
    assert counts(app)["events"] == 0
    with app.test_client() as client:
        retry = client.post(URL, data=body, headers=stripe_headers(body))
    assert retry.get_json()["outcome"] == "applied"


def test_verification_touches_neither_database_nor_redis(dead_db_app):
    body = b'{"id": "evt_forged", "type": "checkout.session.completed"}'
    client = dead_db_app.test_client()
    for _ in range(50):
        response = client.post(URL, data=body, headers=stripe_headers(body, "whsec_forged"))
        # With either service touched, the request would fail with 503/500 instead.
        assert response.status_code == 400
