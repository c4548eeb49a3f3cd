"""Outbox rows are enqueued only after their commit; a Redis outage or lost job loses nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from app.extensions import db
from app.models import Notification, Payment, utcnow
from app.notifications.delivery import sweep_due
from app.notifications.dispatch import enqueue_delivery, job_id_for
from app.payments.state import lock_payment, record_creation, transition
from app.payments.status import PaymentStatus, StatusSource
from app.tasks import get_queue, get_redis
from tests.notifications.conftest import notification_row, status_is


def queued_ids(app) -> list[str]:
    with app.app_context():
        queue = get_queue("notifications")
        return list(queue.get_job_ids()) + list(queue.scheduled_job_registry.get_job_ids())


@pytest.fixture
def redis_down(app):
    """Point REDIS_URL at a port nobody listens on (the real server stays up for the others)."""
    saved = app.config["REDIS_URL"]

    def switch(down: bool) -> None:
        app.config["REDIS_URL"] = "redis://127.0.0.1:1/0" if down else saved
        app.extensions.pop("paybridge_redis", None)

    yield switch
    switch(False)


def new_initiated_payment(merchant_id: int) -> int:
    payment = Payment(
        merchant_id=merchant_id,
        merchant_reference=f"o-{utcnow().timestamp()}",
        amount=100,
        currency="EUR",
        success_url="https://s.example/ok",
        cancel_url="https://s.example/no",
    )
    db.session.add(payment)
    record_creation(payment)
    db.session.commit()
    payment = lock_payment(payment.id)
    transition(payment, PaymentStatus.INITIATED, source=StatusSource.API)
    db.session.commit()
    return payment.id


def test_nothing_is_enqueued_before_the_commit_nor_after_a_rollback(
    app, make_merchant, receiver, notify_config
):
    merchant, _ = make_merchant(notify_url=receiver.url)
    with app.app_context():
        payment_id = new_initiated_payment(merchant.id)
        payment = lock_payment(payment_id)
        transition(payment, PaymentStatus.SUCCESS, source=StatusSource.WEBHOOK)
        db.session.flush()
        assert db.session.scalar(db.select(db.func.count(Notification.id))) == 1
        assert queued_ids(app) == []  # flushed, not committed: no job yet
        db.session.rollback()
        db.session.commit()  # a later, empty commit must not enqueue the rolled-back row
        assert queued_ids(app) == []
        assert db.session.scalar(db.select(db.func.count(Notification.id))) == 0

        payment = lock_payment(payment_id)
        transition(payment, PaymentStatus.SUCCESS, source=StatusSource.WEBHOOK)
        db.session.commit()
        notification_id = db.session.scalar(db.select(Notification.id))
    assert queued_ids(app) == [job_id_for(notification_id, 0)]
    assert notification_row(app, notification_id).enqueued_at is not None


def test_redis_down_while_a_payment_completes_delivers_after_redis_returns(
    app, make_merchant, receiver, finish_payment, worker, redis_down, runner
):
    merchant, _ = make_merchant(notify_url=receiver.url)
    redis_down(True)
    payment_id, notification_id = finish_payment(merchant.id)  # the commit itself succeeds
    with app.app_context():
        assert db.session.get(Payment, payment_id).status == "SUCCESS"
        # The sweeper cannot reach Redis either: it enqueues nothing and says so.
        assert sweep_due() == 0
    refused = runner.invoke(args=["notifications", "sweep"])
    assert refused.exit_code == 1 and "Redis is unreachable" in refused.output
    n = notification_row(app, notification_id)
    assert (n.status, n.enqueued_at) == ("pending", None)

    redis_down(False)
    assert queued_ids(app) == []
    result = runner.invoke(args=["notifications", "sweep"])
    assert result.exit_code == 0 and "Enqueued 1 notification(s)." in result.output
    assert queued_ids(app) == [job_id_for(notification_id, 0)]
    worker.run_until(status_is(app, notification_id, "delivered"), what="delivery")
    assert len(receiver.requests) == 1


def test_the_same_attempt_enqueued_twice_is_one_job(app, make_merchant, receiver, finish_payment):
    merchant, _ = make_merchant(notify_url=receiver.url)
    _, notification_id = finish_payment(merchant.id)
    with app.app_context():
        assert enqueue_delivery(notification_id, 0)
        assert enqueue_delivery(notification_id, 0)
        # Due and queued: the sweeper leaves it alone.
        assert sweep_due() == 0
    assert queued_ids(app) == [job_id_for(notification_id, 0)]


def test_a_lost_job_is_enqueued_again_by_the_sweeper(
    app, make_merchant, receiver, finish_payment, worker
):
    merchant, _ = make_merchant(notify_url=receiver.url)
    _, notification_id = finish_payment(merchant.id)
    with app.app_context():
        get_redis().flushdb()  # the job is gone (Redis lost its data)
        assert sweep_due() == 0  # enqueued moments ago: give its job a chance first
        long_ago = utcnow() - timedelta(minutes=5)
        db.session.execute(
            db.update(Notification)
            .where(Notification.id == notification_id)
            .values(enqueued_at=long_ago, next_attempt_at=long_ago)
        )
        db.session.commit()
        assert sweep_due() == 1
    worker.run_until(status_is(app, notification_id, "delivered"), what="delivery")
    assert len(receiver.requests) == 1


def failed_for_want_of_a_url(app, make_merchant, finish_payment, worker) -> int:
    """A final payment's notification, failed because its merchant had no notify_url."""
    merchant, _ = make_merchant(notify_url=None)
    _, notification_id = finish_payment(merchant.id)
    worker.run_until(status_is(app, notification_id, "failed"), what="failure")
    return notification_id


def resend_to(app, notification_id: int, url: str) -> None:
    """Give the merchant a notify_url and resend, as the dashboard does."""
    from app.notifications.delivery import resend

    with app.app_context():
        db.session.get(Notification, notification_id).merchant.notify_url = url
        db.session.commit()
        resend(notification_id)
        db.session.commit()


def test_a_finished_job_is_gone_and_its_id_serves_a_resend(
    app, make_merchant, receiver, finish_payment, worker
):
    notification_id = failed_for_want_of_a_url(app, make_merchant, finish_payment, worker)
    with app.app_context():
        # Delivery jobs keep no result: the outbox row is the record.
        with pytest.raises(NoSuchJobError):
            Job.fetch(job_id_for(notification_id, 0), connection=get_redis())
    resend_to(app, notification_id, receiver.url)
    assert queued_ids(app) == [job_id_for(notification_id, 0)]
    worker.run_until(status_is(app, notification_id, "delivered"), what="delivery")


def test_a_kept_job_that_already_ran_does_not_block_a_new_enqueue(
    app, make_merchant, receiver, finish_payment, worker
):
    """A job that crashed stays in RQ's failed registry: a resend needs a job id of its own."""
    notification_id = failed_for_want_of_a_url(app, make_merchant, finish_payment, worker)
    with app.app_context():
        crashed = get_queue("notifications").create_job(
            print, job_id=job_id_for(notification_id, 0)
        )
        crashed.set_status(JobStatus.FAILED)
        crashed.save()
    resend_to(app, notification_id, receiver.url)
    [job_id] = queued_ids(app)
    assert job_id.startswith(job_id_for(notification_id, 0) + "-r")
    worker.run_until(status_is(app, notification_id, "delivered"), what="delivery")


def test_a_savepoint_rollback_keeps_the_outer_transactions_notification(
    app, make_merchant, receiver, notify_config
):
    merchant, _ = make_merchant(notify_url=receiver.url)
    with app.app_context():
        payment_id = new_initiated_payment(merchant.id)
        payment = lock_payment(payment_id)
        transition(payment, PaymentStatus.SUCCESS, source=StatusSource.WEBHOOK)
        db.session.flush()
        savepoint = db.session.begin_nested()
        db.session.add(Payment(merchant_id=merchant.id, merchant_reference="x", amount=-1))
        savepoint.rollback()
        db.session.commit()
        notification_id = db.session.scalar(db.select(Notification.id))
    assert queued_ids(app) == [job_id_for(notification_id, 0)]
