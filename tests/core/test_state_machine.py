"""The transition table of DESIGN.md, proved on real rows in MariaDB."""

from __future__ import annotations

import itertools

import pytest

from app.extensions import db
from app.models import (
    Notification,
    Payment,
    PaymentStatus,
    PaymentStatusChange,
    StatusSource,
)
from app.models.payment import PAYMENT_TRANSITIONS
from app.payments.state import IllegalTransition, lock_payment, record_creation, transition
from tests.support.factories import add_merchant, add_payment_row

ALLOWED = {
    ("CREATED", "INITIATED"),
    ("CREATED", "FAILED"),
    ("INITIATED", "PENDING"),
    ("INITIATED", "SUCCESS"),
    ("INITIATED", "FAILED"),
    ("PENDING", "SUCCESS"),
    ("PENDING", "FAILED"),
}
ALL_PAIRS = list(itertools.product([s.value for s in PaymentStatus], repeat=2))


def make_payment_in(status: str) -> Payment:
    """A payment put straight into `status` (with only its creation in the history)."""
    merchant, _ = add_merchant("m")
    payment = add_payment_row(merchant.id, merchant_reference=f"order-{status}", amount=1000)
    record_creation(payment)
    db.session.flush()
    payment.status = status
    db.session.commit()
    return payment


def test_table_in_code_is_the_table_of_the_design():
    in_code = {(a.value, b.value) for a, targets in PAYMENT_TRANSITIONS.items() for b in targets}
    assert in_code == ALLOWED


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS)
def test_every_pair_of_statuses(app_ctx, current, target):
    payment = make_payment_in(current)
    locked = lock_payment(payment.id)
    if (current, target) in ALLOWED:
        change = transition(locked, PaymentStatus(target), source=StatusSource.API, reason="t")
        db.session.commit()
        assert locked.status == target
        assert locked.status_version == 2
        assert (change.from_status, change.to_status, change.source) == (current, target, "api")
        notifications = db.session.query(Notification).filter_by(payment_id=payment.id).all()
        # Every status but CREATED is an event: payment.initiated/pending/succeeded/failed.
        expected = {"INITIATED": "payment.initiated", "PENDING": "payment.pending",
                    "SUCCESS": "payment.succeeded", "FAILED": "payment.failed"}  # fmt: skip
        assert [n.event_type for n in notifications] == (
            [expected[target]] if target in expected else []
        )
    else:
        with pytest.raises(IllegalTransition) as raised:
            transition(locked, PaymentStatus(target), source=StatusSource.API)
        db.session.rollback()
        expected = (
            "PAYMENT_ALREADY_FINAL" if current in ("SUCCESS", "FAILED") else "ILLEGAL_TRANSITION"
        )
        assert raised.value.code == expected
        fresh = db.session.get(Payment, payment.id)
        assert fresh.status == current
        assert db.session.query(PaymentStatusChange).filter_by(payment_id=payment.id).count() == 1


def test_final_notification_carries_the_payment_and_its_version(app_ctx):
    payment = make_payment_in("INITIATED")
    locked = lock_payment(payment.id)
    transition(locked, PaymentStatus.SUCCESS, source=StatusSource.WEBHOOK, psp_event_id="evt_1")
    db.session.commit()
    notification = db.session.query(Notification).filter_by(payment_id=payment.id).one()
    assert notification.event_type == "payment.succeeded"
    assert notification.payload["type"] == "payment.succeeded"
    assert notification.payload["id"] == notification.public_id
    assert notification.payload["data"]["id"] == payment.public_id
    assert notification.payload["data"]["status"] == "SUCCESS"
    assert notification.payload["data"]["status_version"] == 2
