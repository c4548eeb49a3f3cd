"""Housekeeping: old Idempotency-Keys are forgotten, recent and in-flight ones kept."""

from datetime import timedelta

from app.extensions import db
from app.models import IdempotencyRecord, Merchant, utcnow
from app.tasks.maintenance import purge_idempotency_records
from app.tasks.schedule import PERIODIC_JOBS
from tests.support.factories import add_merchant


def record(merchant: Merchant, key: str, age_hours: float, state: str) -> IdempotencyRecord:
    row = IdempotencyRecord(
        merchant_id=merchant.id,
        idempotency_key=key,
        method="POST",
        path="/api/v1/payments",
        request_fingerprint="f" * 64,
        state=state,
        created_at=utcnow() - timedelta(hours=age_hours),
    )
    db.session.add(row)
    return row


def test_purge_forgets_only_completed_keys_past_retention(app_ctx):
    merchant, _ = add_merchant("m")
    record(merchant, "old-done", 49, IdempotencyRecord.STATE_COMPLETED)
    record(merchant, "old-in-flight", 49, IdempotencyRecord.STATE_IN_PROGRESS)
    record(merchant, "recent-done", 1, IdempotencyRecord.STATE_COMPLETED)
    db.session.commit()

    assert purge_idempotency_records() == 1

    keys = {r.idempotency_key for r in db.session.query(IdempotencyRecord)}
    assert keys == {"old-in-flight", "recent-done"}


def test_purge_is_scheduled():
    paths = {job.path for job in PERIODIC_JOBS}
    assert "app.tasks.maintenance.purge_idempotency_records" in paths
