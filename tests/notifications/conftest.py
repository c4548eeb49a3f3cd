"""Fixtures for the notification tests: payments that reach a final status, and deliveries."""

from __future__ import annotations

import time

import pytest

from app.extensions import db
from app.models import Notification, Payment, PaymentStatus, StatusSource
from app.payments.state import lock_payment, record_creation, transition


@pytest.fixture
def notify_config(app):
    """Short schedules for these tests; whatever a test changes is put back afterwards."""
    keys = ("NOTIFY_RETRY_SCHEDULE", "NOTIFY_TIMEOUT_SECONDS", "NOTIFY_ALLOW_PRIVATE_TARGETS")
    saved = {key: app.config[key] for key in keys}
    app.config.update(NOTIFY_RETRY_SCHEDULE=[1, 1, 1], NOTIFY_TIMEOUT_SECONDS=2.0)
    yield app.config
    app.config.update(saved)


def new_initiated_payment(merchant_id: int) -> int:
    """A payment registered at the PSP (INITIATED), committed; its id. Needs an app context."""
    payment = Payment(
        merchant_id=merchant_id,
        merchant_reference=f"order-{time.monotonic_ns()}",
        amount=2500,
        currency="EUR",
        success_url="https://shop.example/ok",
        cancel_url="https://shop.example/cancel",
    )
    db.session.add(payment)
    record_creation(payment)
    db.session.commit()
    payment = lock_payment(payment.id)
    transition(payment, PaymentStatus.INITIATED, source=StatusSource.API)
    db.session.commit()
    return payment.id


@pytest.fixture
def finish_payment(app, notify_config):
    """Create a payment and move it to a final status the way webhooks do: lock, transition,
    commit. Returns (payment_id, notification_id) of the outbox row that commit wrote."""

    def factory(merchant_id: int, target: PaymentStatus = PaymentStatus.SUCCESS):
        with app.app_context():
            payment = lock_payment(new_initiated_payment(merchant_id))
            transition(payment, target, source=StatusSource.WEBHOOK, reason="test")
            db.session.commit()
            notification_id = db.session.scalar(
                db.select(Notification.id)
                .where(Notification.payment_id == payment.id)
                .order_by(Notification.id.desc())
            )
            return payment.id, notification_id

    return factory


class Deliveries:
    """The worker's delivery cycles, run in this process: claim, POST, record, until done."""

    def __init__(self, app) -> None:
        self.app = app

    def run_once(self) -> int:
        """Deliver until nothing is due; how many attempts that made."""
        from app.notifications.delivery import deliver_due

        made = 0
        with self.app.app_context():
            while attempts := deliver_due():
                made += attempts
        return made

    def run_until(self, condition, timeout: float = 20.0, what: str = "condition"):
        """Run cycles (retries become due as time passes) until `condition()` holds."""
        deadline = time.monotonic() + timeout
        while True:
            self.run_once()
            with self.app.app_context():
                result = condition()
                db.session.remove()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.2)


@pytest.fixture
def worker(app, notify_config):
    return Deliveries(app)


def notification_row(app, notification_id: int) -> Notification:
    with app.app_context():
        n = db.session.get(Notification, notification_id)
        db.session.expunge(n)
        return n


def attempts_of(app, notification_id: int) -> list:
    from app.models import NotificationAttempt

    with app.app_context():
        rows = db.session.scalars(
            db.select(NotificationAttempt)
            .where(NotificationAttempt.notification_id == notification_id)
            .order_by(NotificationAttempt.id)
        ).all()
        for row in rows:
            db.session.expunge(row)
        return rows


def status_is(app, notification_id: int, status: str):
    def check():
        return db.session.get(Notification, notification_id).status == status

    return check
