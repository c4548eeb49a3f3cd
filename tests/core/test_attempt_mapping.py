"""Unit tests of single functions: failure reasons as codes and words, and what the Stripe
adapter reads from a PaymentIntent's last_payment_error and a charge's payment_method_details."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app.payments import failure_reasons
from app.payments.outcomes import settles_late
from app.psp.stripe_adapter import (
    attempt_from_charge,
    event_from_stripe,
    method_from_stripe,
    payment_intent_from_stripe,
)

DECLINED_INTENT = {
    "id": "pi_3Decl",
    "object": "payment_intent",
    "status": "requires_payment_method",
    "created": 1_790_000_000,
    "metadata": {"paybridge_payment_id": "pay_abc"},
    "latest_charge": "ch_3Fail",
    "last_payment_error": {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds.",
        "charge": "ch_3Fail",
        "payment_method": {
            "id": "pm_1",
            "object": "payment_method",
            "type": "card",
            "card": {"brand": "visa", "last4": "9995", "exp_month": 4, "exp_year": 2031,
                     "funding": "credit", "country": "US", "wallet": None},
        },
    },
}  # fmt: skip


T0 = datetime(2026, 12, 1, 10, 0, 0)
LATER = T0 + timedelta(minutes=2)


@pytest.mark.parametrize(
    ("last_decline", "shopper_canceled_at", "code"),
    [
        (None, None, "expired"),
        (T0, None, "declined"),
        (None, T0, "canceled_by_shopper"),
        (T0, LATER, "canceled_by_shopper"),  # declined, then left by the back link
        (LATER, T0, "declined"),  # left, came back, declined, gave up
    ],
    ids=["no-try", "declined", "left", "declined-then-left", "left-then-declined"],
)
def test_a_closed_checkout_reads_as_what_the_shopper_did_last(
    last_decline, shopper_canceled_at, code
):
    assert (
        failure_reasons.for_expiry(
            last_decline=last_decline, shopper_canceled_at=shopper_canceled_at
        )
        == code
    )


def test_every_code_has_words_and_unknown_codes_read_as_themselves():
    assert set(failure_reasons.FAILURE_REASONS) == {
        "declined",
        "expired",
        "canceled_by_shopper",
        "canceled_by_merchant",
        "rejected_by_psp",
    }
    assert all(len(code) <= 24 for code in failure_reasons.FAILURE_REASONS)  # the column
    assert failure_reasons.words("canceled_by_shopper") == "Canceled by the shopper"
    assert failure_reasons.words("something_new") == "something_new"
    assert failure_reasons.words(None) is None
    assert failure_reasons.CANCELED_REASONS == {"canceled_by_shopper", "canceled_by_merchant"}


@pytest.mark.parametrize(
    ("failure_code", "reason"),
    [
        ("expired", "expired"),
        ("card_declined", "declined"),  # the issuer's decline
        ("insufficient_funds", "declined"),
        ("fraudulent", "rejected_by_psp"),  # blocked by Stripe (Radar)
        ("highest_risk_level", "rejected_by_psp"),
        (None, "rejected_by_psp"),
    ],
)
def test_a_failure_nobody_named_gets_a_reason_from_the_psp_code(failure_code, reason):
    assert failure_reasons.default_for(failure_code) == reason


def test_the_declined_attempt_of_a_payment_failed_event():
    event = event_from_stripe(
        {
            "id": "evt_1",
            "type": "payment_intent.payment_failed",
            "created": 1_790_000_100,
            "livemode": False,
            "data": {"object": DECLINED_INTENT},
        }
    )
    intent = event.payment_intent
    assert intent is not None and event.session is None
    assert intent.metadata == {"paybridge_payment_id": "pay_abc"}
    attempt = intent.last_error
    assert (attempt.outcome, attempt.charge_id) == ("failed", "ch_3Fail")
    assert (attempt.decline_code, attempt.failure_code) == ("insufficient_funds", "card_declined")
    assert (attempt.method.type, attempt.method.brand, attempt.method.last4) == (
        "card",
        "visa",
        "9995",
    )
    assert attempt.attempted_at == event.created_at
    assert intent.latest_charge is None  # not expanded in an event


def test_a_failed_charge_event_is_the_same_attempt_as_the_intents_error():
    """charge.failed names the charge the intent's last_payment_error names: one attempt."""
    charge = {
        "id": "ch_3Fail",
        "object": "charge",
        "status": "failed",
        "created": 1_790_000_050,
        "payment_intent": "pi_3Decl",
        "metadata": {"paybridge_payment_id": "pay_abc"},
        "failure_code": "card_declined",
        "failure_message": "Your card has insufficient funds.",
        "outcome": {"type": "issuer_declined", "reason": "insufficient_funds"},
        "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "9995"}},
    }
    raw = {"id": "evt_2", "type": "charge.failed", "created": 1_790_000_100, "livemode": False}
    event = event_from_stripe({**raw, "data": {"object": charge}})
    told = event.charge_attempt
    assert (told.payment_intent_id, told.metadata) == (
        "pi_3Decl",
        {"paybridge_payment_id": "pay_abc"},
    )
    error = payment_intent_from_stripe(DECLINED_INTENT).last_error
    attempt = told.attempt
    assert (attempt.outcome, attempt.charge_id) == ("failed", error.charge_id)
    assert (attempt.decline_code, attempt.failure_code, attempt.failure_message) == (
        error.decline_code, error.failure_code, error.failure_message,
    )  # fmt: skip
    assert attempt.attempted_at == datetime(2026, 9, 21, 14, 14, 10)  # the charge's own time
    paid = {**charge, "status": "succeeded", "failure_code": None, "failure_message": None}
    succeeded = event_from_stripe({**raw, "type": "charge.succeeded", "data": {"object": paid}})
    assert succeeded.charge_attempt.attempt.outcome == "succeeded"
    assert succeeded.charge_attempt.attempt.decline_code is None


def test_a_charge_without_a_charge_id_in_the_error_is_still_an_attempt():
    """3-D Secure failed before any charge: the error names none (the event keys it)."""
    intent = dict(DECLINED_INTENT)
    error = dict(intent["last_payment_error"])
    del error["charge"]
    error["code"], error["decline_code"] = "payment_intent_authentication_failure", None
    intent["last_payment_error"] = error
    attempt = payment_intent_from_stripe(intent).last_error
    assert attempt.charge_id is None and attempt.failure_code.startswith("payment_intent_auth")


def test_charge_details_keep_what_fits_and_drop_what_does_not():
    charge = {
        "id": "ch_3Ok",
        "status": "succeeded",
        "created": 1_790_000_200,
        "failure_code": None,
        "payment_method_details": {
            "type": "card",
            "card": {
                "brand": "mastercard",
                "last4": "4444",
                "exp_month": 12,
                "exp_year": 2034,
                "funding": "debit",
                "country": "DE",
                "wallet": {"type": "apple_pay", "apple_pay": {}},
                "three_d_secure": {"result": "authenticated", "version": "2.2.0"},
            },
        },
    }
    attempt = attempt_from_charge(charge)
    assert attempt.outcome == "succeeded" and attempt.decline_code is None
    assert attempt.method.as_dict() == {
        "type": "card",
        "brand": "mastercard",
        "last4": "4444",
        "exp_month": 12,
        "exp_year": 2034,
        "funding": "debit",
        "country": "DE",
        "wallet": "apple_pay",
        "three_d_secure": "authenticated",
        "mandate": None,
        "mandate_reference": None,  # the charge never carries it: the mandate does
    }
    assert attempt_from_charge("ch_3NotExpanded") is None
    odd = method_from_stripe(
        {"type": "card", "card": {"brand": ["x"], "last4": "12345", "exp_month": True}}
    )
    assert (odd.brand, odd.last4, odd.exp_month) == (None, None, None)
    sepa = method_from_stripe(
        {"type": "sepa_debit", "sepa_debit": {"last4": "3000", "country": "DE", "mandate": "m_1"}}
    )
    assert (sepa.type, sepa.last4, sepa.mandate, sepa.brand) == ("sepa_debit", "3000", "m_1", None)
    assert method_from_stripe({"type": None}) is None


@pytest.mark.parametrize(
    ("status", "method", "late"),
    [
        ("PENDING", "sepa_debit", True),
        ("PENDING", "card", False),
        ("PENDING", None, False),
        ("INITIATED", "sepa_debit", False),
    ],
)
def test_only_a_pending_delayed_method_settles_late(status, method, late):
    assert settles_late(status, method) is late
