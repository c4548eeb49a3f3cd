"""Notification tests: payments that reach a final status as the webhooks move them. The
delivery schedule (`notify_config`) and the in-process `worker` are the root conftest's."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import Notification, PaymentStatus, StatusSource
from app.payments.state import lock_payment, transition
from tests.support.factories import FINAL_NEWS, make_payment


@pytest.fixture
def finish_payment(app, notify_config):
    """Create a payment and move it to a final status the way webhooks do: lock, transition,
    commit. Returns (payment_id, notification_id) of the outbox row that commit wrote."""

    def factory(merchant_id: int, target: PaymentStatus = PaymentStatus.SUCCESS):
        payment_id = make_payment(app, merchant_id, PaymentStatus.INITIATED, amount=2500).id
        with app.app_context():
            payment = lock_payment(payment_id)
            transition(payment, target, source=StatusSource.WEBHOOK, reason="test")
            db.session.commit()
            notification_id = db.session.scalar(
                db.select(Notification.id)
                .where(Notification.payment_id == payment.id, FINAL_NEWS)
                .order_by(Notification.id.desc())
            )
            return payment.id, notification_id

    return factory


def status_is(app, notification_id: int, status: str):
    """A condition for `worker.run_until`: the notification is in `status`."""

    def check():
        return db.session.get(Notification, notification_id).status == status

    return check


def attempted(app, notification_id: int, times: int = 1):
    """A condition for `worker.run_until`: the notification was tried at least `times` times."""

    def check():
        return db.session.get(Notification, notification_id).attempt_count >= times

    return check
