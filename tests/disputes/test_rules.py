"""The rules of a dispute's record, fed the PSP's views directly: events come in any order and
are retried, and a dispute never goes back a stage nor misses its closing notification."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.disputes.service import apply_psp_dispute
from app.extensions import db
from app.models import DisputeState, Notification, PaymentStatus, utcnow
from app.payments.state import lock_payment
from app.psp.base import PspDispute
from tests.support import factories


def reported(status: str, **fields) -> PspDispute:
    values = {
        "id": "dp_rules_1",
        "status": status,
        "amount": 2500,
        "currency": "EUR",
        "reason": "fraudulent",
        "charge_id": "ch_rules_1",
        "payment_intent_id": None,
        "evidence_due_by": utcnow() + timedelta(days=7),
        "has_evidence": False,
        "past_due": False,
        "submission_count": 0,
        "livemode": False,
        "created_at": utcnow(),
    }
    return PspDispute(**(values | fields))


def notifications(payment_id: int) -> list[str]:
    stmt = (
        select(Notification.event_type)
        .where(Notification.payment_id == payment_id)
        .where(Notification.event_type.like("dispute.%"))
        .order_by(Notification.id)
    )
    return list(db.session.scalars(stmt))


def test_a_retried_event_of_the_same_second_never_takes_an_answered_dispute_back(app, merchant):
    with app.app_context():
        payment = factories.record_payment(merchant.id, PaymentStatus.SUCCESS)
        db.session.commit()
        second = utcnow().replace(microsecond=0)
        dispute, _ = apply_psp_dispute(
            lock_payment(payment.id), None, reported("needs_response"), at=second
        )
        db.session.commit()
        # The merchant's answer (no PSP time), then funds_withdrawn of that same second again.
        answered = reported("under_review", has_evidence=True, submission_count=1)
        apply_psp_dispute(lock_payment(payment.id), dispute, answered, at=None)
        db.session.commit()
        _, change = apply_psp_dispute(
            lock_payment(payment.id), dispute, reported("needs_response"), at=second
        )
        db.session.commit()

        assert change is None
        assert (dispute.status, dispute.submission_count) == ("under_review", 1)
        assert notifications(payment.id) == ["dispute.created", "dispute.updated"]


def test_a_dispute_first_heard_of_once_decided_is_announced_created_and_closed(app, merchant):
    with app.app_context():
        payment = factories.record_payment(merchant.id, PaymentStatus.SUCCESS)
        db.session.commit()
        dispute, _ = apply_psp_dispute(
            lock_payment(payment.id), None, reported("lost"), at=utcnow()
        )
        db.session.commit()

        assert dispute.closed_at is not None
        assert notifications(payment.id) == ["dispute.created", "dispute.closed"]


def test_a_payments_dispute_state_puts_what_needs_attention_first():
    assert DisputeState.of([]) is None
    assert DisputeState.of(["won", "needs_response"]) is DisputeState.OPEN
    assert DisputeState.of(["warning_under_review"]) is DisputeState.OPEN
    assert DisputeState.of(["won", "lost"]) is DisputeState.LOST
    assert DisputeState.of(["won", "warning_closed", "prevented"]) is DisputeState.WON
