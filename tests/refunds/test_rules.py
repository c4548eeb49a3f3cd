"""The refund status rules (every pair of our status and the PSP's), and the adapter's parsing."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import Notification, Payment, Refund
from app.payments.state import lock_payment
from app.psp.base import PspRefund
from app.refunds.service import apply_psp_refund, lock_refund, validate_refund_params
from tests.snapshot import behind_an_older_snapshot
from tests.support.factories import FINAL_NEWS, record_payment

OURS = ["pending", "succeeded", "failed"]
THEIRS = ["pending", "requires_action", "succeeded", "failed", "canceled"]
# (ours, PSP's) → ours afterwards; anything not listed stays as it is.
EXPECTED = {
    ("pending", "succeeded"): "succeeded",
    ("pending", "failed"): "failed",
    ("pending", "canceled"): "failed",
    ("succeeded", "failed"): "failed",
    ("succeeded", "canceled"): "failed",
}


def _paid(merchant_id: int) -> Payment:
    payment = record_payment(merchant_id, "SUCCESS", merchant_reference="rules-1", amount=1000)
    db.session.commit()
    return payment


@pytest.mark.parametrize("ours", OURS)
@pytest.mark.parametrize("theirs", THEIRS)
def test_every_pair_of_statuses(app, make_merchant, ours, theirs):
    merchant, _ = make_merchant()
    with app.app_context():
        payment = _paid(merchant.id)
        refund = Refund(
            payment_id=payment.id,
            merchant_id=merchant.id,
            amount=400,
            currency="EUR",
            status=ours,
            psp_refund_id="re_psp_1",
        )
        payment.refunded_amount = 400 if ours == "succeeded" else 0
        db.session.add(refund)
        db.session.commit()
        before = db.session.scalar(db.select(db.func.count(Notification.id)))
        payment = lock_payment(payment.id)

        change = apply_psp_refund(
            payment,
            refund,
            PspRefund(
                id="re_psp_1",
                status=theirs,
                amount=400,
                currency="EUR",
                payment_intent_id="pi_1",
                charge_id="ch_1",
                failure_reason="declined" if theirs == "failed" else None,
                metadata={},
                created_at=None,
            ),
            via="test",
        )
        db.session.commit()

        expected = EXPECTED.get((ours, theirs), ours)
        assert refund.status == expected
        assert (change is not None) == (expected != ours)
        assert payment.refunded_amount == (400 if expected == "succeeded" else 0)
        assert payment.status == "SUCCESS"
        notified = db.session.scalar(db.select(db.func.count(Notification.id))) - before
        assert notified == (1 if expected != ours else 0)
        if expected == "failed" and ours != "failed":
            assert refund.failure_reason == ("declined" if theirs == "failed" else "canceled")


def _succeeded(psp_refund_id: str) -> PspRefund:
    return PspRefund(
        id=psp_refund_id,
        status="succeeded",
        amount=400,
        currency="EUR",
        payment_intent_id="pi_1",
        charge_id="ch_1",
        failure_reason=None,
        metadata={},
        created_at=None,
    )


def test_a_refund_notification_lists_the_refunds_finished_since_its_snapshot(app, make_merchant):
    # Two refunds of one payment finish at once: the second waits for the payment's lock with
    # a snapshot taken before the first committed. Its notification must show the first as
    # succeeded, as the payment's refunded_amount (read under the lock) already counts it.
    merchant, _ = make_merchant()
    with app.app_context():
        payment = _paid(merchant.id)
        first, second = (
            Refund(
                payment_id=payment.id,
                merchant_id=merchant.id,
                amount=400,
                currency="EUR",
                status="pending",
                psp_refund_id=f"re_psp_{n}",
            )
            for n in (1, 2)
        )
        db.session.add_all([first, second])
        db.session.commit()
        payment_id, first_id, second_id = payment.id, first.id, second.id
        db.session.remove()

    def finish(refund_id: int, psp_refund_id: str) -> None:
        locked = lock_payment(payment_id)
        apply_psp_refund(locked, lock_refund(refund_id), _succeeded(psp_refund_id), via="test")
        db.session.commit()

    behind_an_older_snapshot(
        app, lambda: finish(first_id, "re_psp_1"), lambda: finish(second_id, "re_psp_2")
    )
    with app.app_context():
        notification = db.session.scalars(
            db.select(Notification)
            .where(Notification.payment_id == payment_id, FINAL_NEWS)
            .order_by(Notification.id.desc())
            .limit(1)
        ).one()
        data = notification.payload["data"]
        db.session.remove()

    assert (notification.event_type, data["status"]) == ("refund.succeeded", "succeeded")
    assert data["payment"]["refunded_amount"] == 800
    assert [r["status"] for r in data["payment"]["refunds"]] == ["succeeded", "succeeded"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (None, {"amount": None, "reason": None}),
        ({}, {"amount": None, "reason": None}),
        ({"amount": 1}, {"amount": 1, "reason": None}),
        ({"reason": "fraudulent"}, {"amount": None, "reason": "fraudulent"}),
    ],
)
def test_valid_refund_params(params, expected):
    assert validate_refund_params(params) == expected


def test_adapter_reads_refunds_from_refund_and_charge_events():
    from app.psp.stripe_adapter import event_from_stripe

    refund = {
        "id": "re_1",
        "object": "refund",
        "amount": 300,
        "currency": "eur",
        "status": "failed",
        "failure_reason": "expired_or_canceled_card",
        "payment_intent": "pi_1",
        "charge": "ch_1",
        "metadata": {"paybridge_refund_id": "re_ours"},
        "created": 1_700_000_000,
    }
    charge = {"id": "ch_1", "object": "charge", "refunds": {"object": "list", "data": [refund]}}
    for obj, kind in ((refund, "refund.failed"), (charge, "charge.refunded")):
        raw = {"id": "evt_1", "object": "event", "type": kind, "created": 1}
        raw["data"] = {"object": obj}
        event = event_from_stripe(raw)
        [parsed] = event.refunds
        assert (parsed.id, parsed.status, parsed.amount, parsed.currency) == (
            "re_1",
            "failed",
            300,
            "EUR",
        )
        assert parsed.failure_reason == "expired_or_canceled_card"
        assert parsed.metadata == {"paybridge_refund_id": "re_ours"}
        assert (parsed.payment_intent_id, parsed.charge_id) == ("pi_1", "ch_1")


def test_adapter_reads_the_current_charge_refunded_shape_as_a_total():
    """Since API 2022-11-15 the charge lists no refunds: the event carries its total and
    payment intent; a total that is not a whole number ≥ 0 is refused like any bad payload."""
    from app.psp.stripe_adapter import check_event, event_from_stripe

    charge = {
        "id": "ch_1",
        "object": "charge",
        "amount": 5000,
        "amount_refunded": 700,
        "currency": "eur",
        "payment_intent": "pi_1",
        "refunded": False,
    }
    raw = {"id": "evt_1", "object": "event", "type": "charge.refunded", "created": 1}
    raw["data"] = {"object": charge}
    event = check_event(event_from_stripe(raw))
    assert event.refunds == ()
    assert (event.charge.charge_id, event.charge.payment_intent_id) == ("ch_1", "pi_1")
    assert (event.charge.amount_refunded, event.charge.currency) == (700, "EUR")
    for bad in (-1, "700", True, 7.5):
        raw["data"] = {"object": {**charge, "amount_refunded": bad}}
        with pytest.raises(ValueError):
            event_from_stripe(raw)
