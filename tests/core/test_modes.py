"""Test and live modes in the API: a payment takes the mode of the key that made it, and a key
sees its own mode's objects only (as on Stripe)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.extensions import db
from app.models import IdempotencyRecord, Payment, PaymentStatus
from app.payments.service import create_cap
from app.subscriptions.service import ensure_for_first_payment
from tests.support.api import auth_headers, create_body, post_refund
from tests.support.factories import make_api_key, record_payment
from tests.support.rows import count_rows, get_row

pytestmark = pytest.mark.usefixtures("emu")


@pytest.fixture
def keys(app, make_merchant):
    """One merchant with a test key (pbk_test_…) and a live key (pbk_live_…)."""
    merchant, test_key = make_merchant()
    live_key = make_api_key(app, merchant.id, livemode=True)
    assert test_key.startswith("pbk_test_") and live_key.startswith("pbk_live_")
    return SimpleNamespace(merchant=merchant, test=test_key, live=live_key)


def live_payment(app, merchant_id: int, status=PaymentStatus.INITIATED, **fields):
    """A live payment row moved through the state machine (no PSP): its public id."""
    with app.app_context():
        payment = record_payment(merchant_id, status, livemode=True, **fields)
        db.session.commit()
        return payment.public_id


def create(client, key: str, idem: str | None = None, **overrides):
    return client.post(
        "/api/v1/payments", json=create_body(**overrides), headers=auth_headers(key, idem)
    )


# -- a payment takes its key's mode ------------------------------------------------------------


def test_a_test_key_makes_a_test_payment_that_says_so(app, client, keys):
    response = create(client, keys.test, "order-1-create")

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["livemode"] is False
    with app.app_context():
        stored = db.session.scalars(db.select(Payment).filter_by(public_id=body["id"])).one()
        assert stored.livemode is False
        [record] = db.session.scalars(db.select(IdempotencyRecord)).all()
        assert record.livemode is False


def test_a_live_key_makes_a_live_payment_registered_with_the_live_stripe_key(
    app, client, keys, live_emulator
):
    from app.psp import get_provider

    response = create(client, keys.live, "order-1-create")

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["livemode"] is True and body["status"] == "INITIATED"
    with app.app_context():
        assert get_row(app, Payment, public_id=body["id"]).livemode is True
        # The session exists in the live account: asked with the live key, it is there.
        session = get_provider(livemode=True).retrieve_checkout_session(body["psp_session_id"])
        assert session.client_reference_id == body["id"]


def test_one_idempotency_key_in_both_modes_makes_two_payments_and_replays_each_its_own(
    app, client, keys, live_emulator
):
    test_first = create(client, keys.test, "same-key")
    live_first = create(client, keys.live, "same-key")
    test_again = create(client, keys.test, "same-key")
    live_again = create(client, keys.live, "same-key")

    assert [r.status_code for r in (test_first, live_first)] == [201, 201]
    assert "Idempotent-Replayed" not in live_first.headers  # not the test answer replayed
    test_id, live_id = test_first.get_json()["id"], live_first.get_json()["id"]
    assert test_id != live_id
    assert test_again.headers["Idempotent-Replayed"] == "true"
    assert live_again.headers["Idempotent-Replayed"] == "true"
    assert (test_again.get_json()["id"], live_again.get_json()["id"]) == (test_id, live_id)
    assert (test_again.get_json()["livemode"], live_again.get_json()["livemode"]) == (False, True)
    assert count_rows(app, Payment) == 2
    assert count_rows(app, IdempotencyRecord) == 2


def test_a_reference_used_in_live_mode_is_free_in_test_mode_and_taken_in_its_own(app, client, keys):
    live_id = live_payment(app, keys.merchant.id, merchant_reference="order-77")

    in_test = create(client, keys.test, merchant_reference="order-77")
    again_in_test = create(client, keys.test, merchant_reference="order-77")

    assert in_test.status_code == 201, in_test.get_json()
    assert in_test.get_json()["livemode"] is False
    assert again_in_test.status_code == 409
    error = again_in_test.get_json()["error"]
    assert error["code"] == "DUPLICATE_MERCHANT_REFERENCE"
    # It names the test payment, never the live one the test key may not see.
    assert error["details"]["payment_id"] == in_test.get_json()["id"] != live_id


def test_a_key_of_a_mode_this_paybridge_does_not_run_cannot_create_and_nothing_is_stored(
    app, client, keys, monkeypatch
):
    monkeypatch.setitem(app.config, "STRIPE_LIVE_SECRET_KEY", None)
    app.extensions.pop("paybridge_psp", None)

    refused = create(client, keys.live, "order-1-create")
    listed = client.get("/api/v1/payments", headers=auth_headers(keys.live))

    assert refused.status_code == 403
    error = refused.get_json()["error"]
    assert error["code"] == "MODE_NOT_CONFIGURED"
    assert "STRIPE_LIVE_SECRET_KEY" in error["message"]
    assert count_rows(app, Payment) == 0 and count_rows(app, IdempotencyRecord) == 0
    assert listed.status_code == 200 and listed.get_json()["data"] == []  # reads still work
    # The test key of the same merchant goes on creating.
    assert create(client, keys.test).status_code == 201


# -- a key sees its own mode only ---------------------------------------------------------------


def test_a_test_key_never_sees_a_live_payment_and_a_live_key_never_a_test_one(
    app, client, keys, make_payment
):
    live_id = live_payment(app, keys.merchant.id, PaymentStatus.SUCCESS)
    test_id = make_payment(PaymentStatus.SUCCESS, merchant_id=keys.merchant.id).public_id

    for key, own, other, livemode in (
        (keys.test, test_id, live_id, False),
        (keys.live, live_id, test_id, True),
    ):
        headers = auth_headers(key)
        own_answer = client.get(f"/api/v1/payments/{own}", headers=headers)
        assert own_answer.status_code == 200
        assert own_answer.get_json()["livemode"] is livemode
        listed = client.get("/api/v1/payments", headers=headers).get_json()["data"]
        assert [(p["id"], p["livemode"]) for p in listed] == [(own, livemode)]
        by_reference = client.get(
            "/api/v1/payments",
            query_string={
                "merchant_reference": get_row(app, Payment, public_id=other).merchant_reference
            },
            headers=headers,
        )
        assert by_reference.get_json()["data"] == []
        # The other mode's payment is not found, whatever is asked of it: as a missing one.
        for answer in (
            client.get(f"/api/v1/payments/{other}", headers=headers),
            client.post(f"/api/v1/payments/{other}/expire", headers=headers),
            post_refund(client, key, other, {"amount": 100}, idem=f"refund-{other}"),
        ):
            assert answer.status_code == 404
            assert answer.get_json()["error"]["code"] == "PAYMENT_NOT_FOUND"
    assert get_row(app, Payment, public_id=live_id).refunded_amount == 0


def test_a_list_cursor_is_good_only_in_the_mode_that_gave_it_out(app, client, keys):
    for i in range(3):
        live_payment(app, keys.merchant.id, merchant_reference=f"live-{i}")
    first = client.get("/api/v1/payments?limit=1", headers=auth_headers(keys.live)).get_json()
    assert first["has_more"] is True

    in_test = client.get(
        "/api/v1/payments",
        query_string={"limit": 1, "starting_after": first["next_cursor"]},
        headers=auth_headers(keys.test),
    )

    assert in_test.status_code == 400
    assert in_test.get_json()["error"]["code"] == "INVALID_CURSOR"


def test_a_subscription_is_of_its_first_payments_mode_and_seen_with_that_mode_only(
    app, client, keys
):
    with app.app_context():
        first = record_payment(
            keys.merchant.id,
            PaymentStatus.SUCCESS,
            livemode=True,
            payment_type="RECC",
            interval="month",
            psp_subscription_id="sub_live_modes_1",
        )
        subscription = ensure_for_first_payment(first)  # as learning its PSP id does
        db.session.commit()
        public_id, livemode = subscription.public_id, subscription.livemode
    assert livemode is True

    as_live = client.get(f"/api/v1/subscriptions/{public_id}", headers=auth_headers(keys.live))
    as_test = client.get(f"/api/v1/subscriptions/{public_id}", headers=auth_headers(keys.test))
    cancel_as_test = client.post(
        f"/api/v1/subscriptions/{public_id}/cancel",
        json={"at_period_end": True},
        headers=auth_headers(keys.test),
    )

    assert as_live.status_code == 200
    body = as_live.get_json()
    assert body["livemode"] is True
    assert [p["livemode"] for p in body["payments"]] == [True]
    assert as_test.status_code == cancel_as_test.status_code == 404
    assert as_test.get_json()["error"]["code"] == "SUBSCRIPTION_NOT_FOUND"


# -- the PSP create cap -------------------------------------------------------------------------


def test_the_psp_create_cap_counts_test_and_live_apart(app):
    with app.app_context():
        test_cap, live_cap = create_cap("stripe", False), create_cap("stripe", True)
        assert test_cap.key != live_cap.key
        # Every slot of the test account's second taken: the live account is untouched.
        rate = app.config["PSP_CREATE_RATE_PER_SECOND"]
        while test_cap.reserve(1, rate=rate, share=1.0, max_wait=0)[0]:
            pass
        allowed, _ = live_cap.reserve(1, rate=rate, share=1.0, max_wait=0)
    assert allowed
