"""A merchant's delivery log with something in each state, made by real deliveries to real
receivers: three events failed at a failing endpoint and delivered at a healthy one, created
3, 2 and 1 hours ago, and a fourth still retrying at the failing one (created now)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from app.extensions import db
from app.models import (
    Notification,
    NotificationDelivery,
    NotificationEndpoint,
    PaymentStatus,
    StatusSource,
    utcnow,
)
from app.payments.state import lock_payment, transition
from tests.support.factories import FINAL_NEWS, add_endpoint, make_payment
from tests.support.receiver import Receiver


@dataclass
class LogWorld:
    failing: Receiver
    healthy: Receiver
    failing_endpoint: str  # we_…
    healthy_endpoint: str
    notes: list[int]  # oldest first; the last one is retrying at the failing endpoint
    msg_ids: list[str]
    now: datetime

    def delivery_id(self, note: int, endpoint: str) -> int:
        return db.session.scalar(
            select(NotificationDelivery.id)
            .join(NotificationEndpoint, NotificationEndpoint.id == NotificationDelivery.endpoint_id)
            .where(
                NotificationDelivery.notification_id == note,
                NotificationEndpoint.public_id == endpoint,
            )
        )

    def stop(self) -> None:
        self.failing.stop()
        self.healthy.stop()


def finish(app, merchant_id: int) -> int:
    """A payment moved to SUCCESS as a webhook does; its final-status notification's id."""
    payment_id = make_payment(app, merchant_id, PaymentStatus.INITIATED, amount=2500).id
    with app.app_context():
        payment = lock_payment(payment_id)
        transition(payment, PaymentStatus.SUCCESS, source=StatusSource.WEBHOOK, reason="test")
        db.session.commit()
        return db.session.scalar(
            select(Notification.id)
            .where(Notification.payment_id == payment_id, FINAL_NEWS)
            .order_by(Notification.id.desc())
        )


def _settled(notes, *, allow_retrying: bool = False):
    def check():
        db.session.expire_all()
        rows = db.session.scalars(
            select(NotificationDelivery).where(NotificationDelivery.notification_id.in_(notes))
        ).all()
        if len(rows) < 2 * len(notes):
            return False
        return all(d.status != "pending" or (allow_retrying and d.attempt_count > 0) for d in rows)

    return check


def build_log_world(app, merchant_id: int, worker, notify_config) -> LogWorld:
    """The merchant's own endpoints are deleted first, so only the two receivers get its
    notifications."""
    failing = Receiver(status=500, extra_headers={"X-Broken": "yes"}).start()
    healthy = Receiver().start()
    with app.app_context():
        db.session.execute(
            update(NotificationEndpoint)
            .where(NotificationEndpoint.merchant_id == merchant_id)
            .values(enabled=False, deleted_at=utcnow())
        )
        bad = add_endpoint(merchant_id, failing.url, ["payment.succeeded"])
        good = add_endpoint(merchant_id, healthy.url, ["payment.succeeded"])
        db.session.commit()
        bad_id, good_id = bad.public_id, good.public_id
    notify_config["NOTIFY_RETRY_SCHEDULE"] = []  # fail at the first attempt
    notes = [finish(app, merchant_id) for _ in range(3)]
    worker.run_until(_settled(notes), what="three failed and delivered")
    notify_config["NOTIFY_RETRY_SCHEDULE"] = [3600]  # one retry, an hour away: retrying
    notes.append(finish(app, merchant_id))
    worker.run_until(_settled(notes, allow_retrying=True), what="a retrying one")
    now = utcnow().replace(microsecond=0)
    with app.app_context():
        for hours, note in zip((3, 2, 1), notes, strict=False):
            db.session.execute(
                update(Notification)
                .where(Notification.id == note)
                .values(created_at=now - timedelta(hours=hours))
            )
        db.session.commit()
        msg_ids = [db.session.get(Notification, n).public_id for n in notes]
    return LogWorld(failing, healthy, bad_id, good_id, notes, msg_ids, now)
