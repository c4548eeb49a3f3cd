"""`flask merchants create/keys create --live/--test` and `flask modes adopt-live` against
MariaDB."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import (
    ApiKey,
    IdempotencyRecord,
    Merchant,
    Payment,
    PaymentStatus,
    PspEvent,
    Subscription,
    utcnow,
)
from app.models.merchant import hash_api_key
from app.subscriptions.service import ensure_for_first_payment
from tests.support.api import auth_headers
from tests.support.factories import make_api_key, record_payment
from tests.support.rows import get_rows


def test_merchants_create_makes_a_test_key_unless_told_live(app, runner, client):
    default = json.loads(runner.invoke(args=["merchants", "create", "T", "--json"]).output)
    live = json.loads(runner.invoke(args=["merchants", "create", "L", "--live", "--json"]).output)
    people = runner.invoke(args=["merchants", "create", "P", "--test"])

    assert (default["livemode"], default["api_key"][:9]) == (False, "pbk_test_")
    assert (live["livemode"], live["api_key"][:9]) == (True, "pbk_live_")
    assert people.exit_code == 0 and "API key:        pbk_test_" in people.output
    assert "(test)" in people.output
    with app.app_context():
        stored = {k.merchant_id: k.livemode for k in db.session.scalars(select(ApiKey))}
    assert stored[default["merchant_id"]] is False and stored[live["merchant_id"]] is True
    for data in (default, live):
        answer = client.get("/api/v1/payments", headers=auth_headers(data["api_key"]))
        assert answer.status_code == 200


def test_keys_create_takes_a_mode_and_keys_list_shows_it(app, runner):
    data = json.loads(runner.invoke(args=["merchants", "create", "K", "--json"]).output)
    mid = str(data["merchant_id"])

    made = runner.invoke(args=["merchants", "keys", "create", mid, "--name", "prod", "--live"])
    listed = runner.invoke(args=["merchants", "keys", "list", mid])

    assert made.exit_code == 0, made.output
    assert made.output.startswith("Live API key ") and ": pbk_live_" in made.output
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert "MODE" in lines[0]
    assert [line.split()[1] for line in lines[1:]] == ["test", "live"]


# -- adopt-live ---------------------------------------------------------------------------------


@pytest.fixture
def before_modes(app, merchant):
    """What a deployment on a live Stripe key had before modes, all test after migration 0012:
    a key without a mode in its name, a payment, a subscription, an event, an Idempotency-Key
    (a day old); and what came after modes: a test key and a test payment made with it."""
    day_ago = utcnow() - timedelta(days=1)
    with app.app_context():
        owner = db.session.get(Merchant, merchant.id)
        raw = "pbk_" + secrets.token_urlsafe(32)
        old_key = ApiKey(
            merchant=owner,
            name="old",
            prefix=raw[:16],
            key_hash=hash_api_key(raw),
            created_at=day_ago,
        )
        db.session.add(old_key)
        old = record_payment(merchant.id, PaymentStatus.SUCCESS, created_at=day_ago)
        first = record_payment(
            merchant.id,
            PaymentStatus.SUCCESS,
            created_at=day_ago,
            payment_type="RECC",
            interval="month",
            psp_subscription_id="sub_" + secrets.token_hex(6),
        )
        ensure_for_first_payment(first).created_at = day_ago
        db.session.add_all(
            [
                PspEvent(
                    event_id="evt_" + secrets.token_hex(6),
                    event_type="checkout.session.completed",
                    payload={},
                    received_at=day_ago,
                ),
                IdempotencyRecord(
                    merchant_id=merchant.id,
                    idempotency_key="order-1-create",
                    method="POST",
                    path="/api/v1/payments",
                    request_fingerprint="f" * 64,
                    state="completed",
                    payment=old,
                    created_at=day_ago,
                    updated_at=day_ago,
                ),
            ]
        )
        db.session.commit()
        old_updated_at = old.updated_at
    new_key = make_api_key(app, merchant.id)  # keys of a mode: the merchant's first, and this
    with app.app_context():
        new = record_payment(merchant.id, PaymentStatus.INITIATED)
        db.session.commit()
        return {"old_key": raw, "new_key": new_key, "old": old.public_id, "new": new.public_id,
                "old_updated_at": old_updated_at}  # fmt: skip


def modes_of(app, model) -> list[bool]:
    return [row.livemode for row in get_rows(app, model)]


def test_adopt_live_marks_what_came_before_modes_live_and_nothing_after(
    app, runner, client, before_modes
):
    result = runner.invoke(args=["modes", "adopt-live", "--yes"])

    assert result.exit_code == 0, result.output
    assert (
        "Marked live: 1 API keys, 2 payments, 1 subscriptions, 1 PSP events, "
        "1 Idempotency-Keys" in result.output
    )
    with app.app_context():
        keys = sorted((k.name, k.livemode) for k in db.session.scalars(select(ApiKey)))
        payments = {p.public_id: p for p in db.session.scalars(select(Payment))}
        assert keys == [("default", False), ("default", False), ("old", True)]
        assert payments[before_modes["old"]].livemode is True
        assert payments[before_modes["new"]].livemode is False
        # A change of mode is no change of the payment's story.
        assert payments[before_modes["old"]].updated_at == before_modes["old_updated_at"]
    assert modes_of(app, Subscription) == [True]
    assert modes_of(app, PspEvent) == [True]
    assert modes_of(app, IdempotencyRecord) == [True]
    # The old key now sees the old payments; the new test key only its own.
    old_sees = client.get("/api/v1/payments", headers=auth_headers(before_modes["old_key"]))
    new_sees = client.get("/api/v1/payments", headers=auth_headers(before_modes["new_key"]))
    assert before_modes["old"] in [p["id"] for p in old_sees.get_json()["data"]]
    assert [p["id"] for p in new_sees.get_json()["data"]] == [before_modes["new"]]

    again = runner.invoke(args=["modes", "adopt-live", "--yes"])
    assert again.exit_code == 0
    assert "Nothing to mark" in again.output
    assert modes_of(app, Payment).count(True) == 2


def test_adopt_live_asks_first_and_a_no_changes_nothing(app, runner, before_modes):
    result = runner.invoke(args=["modes", "adopt-live"], input="n\n")

    assert result.exit_code != 0
    assert "still test: 1 API keys, 2 payments" in result.output
    assert modes_of(app, Payment) == [False, False, False]


def test_adopt_live_refuses_without_a_live_stripe_key(app, runner, before_modes, monkeypatch):
    monkeypatch.setitem(app.config, "STRIPE_LIVE_SECRET_KEY", None)

    result = runner.invoke(args=["modes", "adopt-live", "--yes"])

    assert result.exit_code != 0
    assert "STRIPE_LIVE_SECRET_KEY is not set" in result.output
    assert modes_of(app, Payment) == [False, False, False]
