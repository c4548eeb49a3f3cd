"""Retention: old records go in batches, young and live ones stay, payments and their history
are kept, and the pages that show a payment still render after its old events went."""

from __future__ import annotations

import html as htmllib
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from app.extensions import db, get_redis
from app.models import (
    EndpointTestEvent,
    IdempotencyRecord,
    Notification,
    NotificationAttempt,
    Payment,
    PaymentConflict,
    PaymentStatusChange,
    PspEvent,
    ReconciliationRun,
    utcnow,
)
from app.reconciliation.lock import RunLock
from app.retention.service import purge
from app.tasks.maintenance import purge_old_records
from app.tasks.schedule import PERIODIC_JOBS
from tests.retention import aged
from tests.support.api import auth_headers
from tests.support.factories import add_endpoint, add_merchant, add_payment
from tests.support.rows import count_rows, get_rows

COMPLETED = IdempotencyRecord.STATE_COMPLETED


@pytest.fixture
def small_batches(app, monkeypatch):
    """Batches of two rows: every purge below crosses many windows."""
    monkeypatch.setitem(app.config, "RETENTION_BATCH_SIZE", 2)


def purged_total(table: str) -> float:
    return REGISTRY.get_sample_value("paybridge_retention_purged_total", {"table": table}) or 0.0


def test_old_records_go_and_young_live_and_needed_ones_stay(app_ctx, small_batches):
    merchant, _ = add_merchant("m")
    payment = add_payment(merchant.id, status="SUCCESS", session_id="cs_test_retention")
    db.session.flush()
    # Idempotency-Keys: only completed ones past IDEMPOTENCY_RETENTION_HOURS (48) go.
    aged.key_record(merchant.id, timedelta(hours=49), COMPLETED, "old-done")
    aged.key_record(merchant.id, timedelta(hours=49), "in_progress", "old-in-flight")
    aged.key_record(merchant.id, timedelta(hours=49), "retryable", "old-retryable")
    aged.key_record(merchant.id, timedelta(hours=1), COMPLETED, "recent-done")
    # Notifications: only delivered ones past 90 days go, with their attempts.
    old_delivered = aged.notification(payment, days=100, status="delivered", attempts=2)
    young_delivered = aged.notification(payment, days=10, status="delivered")
    retrying = aged.notification(payment, days=100, status="pending", attempts=3)
    failed = aged.notification(payment, days=100, status="failed", attempts=7)
    # Test events (with their request and response bodies): past 90 days, as attempts, go.
    endpoint = add_endpoint(merchant.id, "https://shop.example/hook", ["*"])
    db.session.flush()
    old_tests = [aged.test_event(endpoint, days=100) for _ in range(3)]
    young_test = aged.test_event(endpoint, days=10)
    # PSP events past 90 days go, but not one an open conflict names.
    old_events = [aged.psp_event(payment, days=100) for _ in range(3)]
    young_event = aged.psp_event(payment, days=10)
    disputed = aged.psp_event(payment, days=100, event_id="evt_open_conflict")
    settled = aged.psp_event(payment, days=100, event_id="evt_settled_conflict")
    db.session.add_all(
        [
            PaymentConflict(
                payment_id=payment.id, kind="paid_after_failed", psp_event_id=disputed.event_id
            ),
            PaymentConflict(
                payment_id=payment.id,
                kind="paid_after_failed",
                psp_event_id=settled.event_id,
                resolved_at=utcnow(),
                resolution="refunded",
            ),
        ]
    )
    # Reconciliation runs past 90 days go, but not the two the next run starts from.
    old_run = aged.recon_run(days=100)
    watermark_run = aged.recon_run(days=95, watermark_days=95)
    newest_succeeded = aged.recon_run(days=1)
    old_failed_run = aged.recon_run(days=100, status="failed")
    running = aged.recon_run(days=100, status="running")
    db.session.commit()
    kept_notes = {young_delivered.id, retrying.id, failed.id}
    gone_note = old_delivered.id
    kept_events = {young_event.event_id, disputed.event_id}
    gone_events = {e.event_id for e in old_events}
    kept_runs = {watermark_run.id, newest_succeeded.id, running.id}
    gone_runs = {old_run.id, old_failed_run.id}
    history_before = count_rows(app_ctx, PaymentStatusChange)
    metric_before = purged_total("psp_events")

    report = purge()

    assert report.finished and not report.skipped
    assert report.rows == {
        "idempotency_keys": 1,
        "notifications": 1,
        "notification_attempts": 2,
        "notification_deliveries": 0,
        "notification_endpoint_tests": 3,
        "psp_events": 4,
        "reconciliation_runs": 2,
    }
    keys = {r.idempotency_key for r in get_rows(app_ctx, IdempotencyRecord)}
    assert keys == {"old-in-flight", "old-retryable", "recent-done"}
    notes = {n.id for n in get_rows(app_ctx, Notification)}
    assert notes == kept_notes and gone_note not in notes
    assert count_rows(app_ctx, NotificationAttempt) == 1 + 3 + 7
    tests_left = {t.id for t in get_rows(app_ctx, EndpointTestEvent)}
    assert tests_left == {young_test.id} and not tests_left & {t.id for t in old_tests}
    events = {e.event_id for e in get_rows(app_ctx, PspEvent)}
    assert events == kept_events and not events & gone_events
    runs = {r.id for r in get_rows(app_ctx, ReconciliationRun)}
    assert runs == kept_runs and not runs & gone_runs
    # Payments and their history are kept whatever their age.
    assert count_rows(app_ctx, Payment) == 1
    assert count_rows(app_ctx, PaymentStatusChange) == history_before
    assert purged_total("psp_events") == metric_before + 4

    again = purge()
    assert sum(again.rows.values()) == 0


def test_zero_keeps_a_kind_forever_and_a_dry_run_deletes_nothing(app_ctx, monkeypatch):
    merchant, _ = add_merchant("m")
    payment = add_payment(merchant.id, status="SUCCESS")
    db.session.flush()
    for _ in range(3):
        aged.psp_event(payment, days=400)
        aged.notification(payment, days=400, status="delivered", attempts=2)
    db.session.commit()

    dry = purge(dry_run=True)

    assert dry.rows["psp_events"] == 3
    assert dry.rows["notifications"] == 3 and dry.rows["notification_attempts"] == 6
    assert count_rows(app_ctx, PspEvent) == 3 and count_rows(app_ctx, NotificationAttempt) == 6

    monkeypatch.setitem(app_ctx.config, "RETENTION_PSP_EVENTS_DAYS", 0)
    report = purge()

    assert report.kept_for["psp_events"] == "forever"
    assert "psp_events" not in report.rows
    assert count_rows(app_ctx, PspEvent) == 3
    assert report.rows["notifications"] == 3
    assert count_rows(app_ctx, Notification) == 0


def test_a_purge_stops_at_its_time_budget_and_the_next_one_continues(app_ctx, small_batches):
    merchant, _ = add_merchant("m")
    payment = add_payment(merchant.id, status="SUCCESS")
    db.session.flush()
    for _ in range(5):
        aged.psp_event(payment, days=100)
    db.session.commit()

    first = purge(max_seconds=0)  # the budget is spent after the first batch

    assert not first.finished
    assert first.rows["psp_events"] == 2
    assert count_rows(app_ctx, PspEvent) == 3
    second = purge()
    assert second.finished and second.rows["psp_events"] == 3
    assert count_rows(app_ctx, PspEvent) == 0


def test_a_purge_is_skipped_while_another_holds_the_lock(app_ctx, runner):
    merchant, _ = add_merchant("m")
    payment = add_payment(merchant.id, status="SUCCESS")
    db.session.flush()
    aged.psp_event(payment, days=100)
    db.session.commit()
    other = RunLock(get_redis(), 60, key=f"{app_ctx.config['RQ_QUEUE_PREFIX']}:retention:run-lock")
    assert other.acquire()
    try:
        assert purge().skipped
        result = runner.invoke(args=["retention", "purge"])
        assert result.exit_code == 1
        assert "Another purge is running" in result.output
        assert count_rows(app_ctx, PspEvent) == 1
        assert purge(dry_run=True).rows["psp_events"] == 1  # counting needs no lock
    finally:
        other.release()
    assert purge().rows["psp_events"] == 1


def test_the_cli_shows_what_it_would_purge_and_then_purges_it(app_ctx, runner):
    merchant, _ = add_merchant("m")
    payment = add_payment(merchant.id, status="SUCCESS")
    db.session.flush()
    aged.notification(payment, days=100, status="delivered", attempts=2)
    aged.key_record(merchant.id, timedelta(days=3), COMPLETED)
    db.session.commit()

    dry = runner.invoke(args=["retention", "purge", "--dry-run"])

    assert dry.exit_code == 0, dry.output
    lines = [line.split() for line in dry.output.splitlines()]
    assert ["TABLE", "KEPT", "FOR", "WOULD", "PURGE"] == lines[0]
    assert ["idempotency_keys", "48", "h", "1"] in lines
    assert ["notifications", "90", "days", "1"] in lines
    assert ["notification_attempts", "(with", "it)", "2"] in lines
    assert ["notification_endpoint_tests", "90", "days", "0"] in lines
    assert ["psp_events", "90", "days", "0"] in lines
    assert "Would purge 4 rows in " in dry.output
    assert count_rows(app_ctx, Notification) == 1

    done = runner.invoke(args=["retention", "purge"])

    assert done.exit_code == 0, done.output
    done_lines = [line.split() for line in done.output.splitlines()]
    assert ["notifications", "90", "days", "1"] in done_lines
    assert count_rows(app_ctx, Notification) == 0
    assert count_rows(app_ctx, IdempotencyRecord) == 0


def test_the_scheduled_job_purges(app_ctx):
    job = next(j for j in PERIODIC_JOBS if j.func is purge_old_records)
    assert job.interval_setting == "RETENTION_INTERVAL_SECONDS"
    merchant, _ = add_merchant("m")
    aged.key_record(merchant.id, timedelta(days=3), COMPLETED)
    db.session.commit()

    assert purge_old_records()["idempotency_keys"] == 1


def test_a_payments_pages_still_render_after_its_old_events_and_notifications_went(
    app, client_a, tenants
):
    with app.app_context():
        payment = add_payment(
            tenants.a_id, status="SUCCESS", session_id="cs_test_kept", reference="order-kept"
        )
        db.session.flush()
        event = aged.psp_event(payment, days=100, event_id="evt_gone_1")
        aged.notification(payment, days=100, status="delivered")
        aged.recon_run(days=100)
        aged.recon_run(days=1)
        db.session.commit()
        public_id, event_row_id = payment.public_id, event.id
        assert purge().rows["psp_events"] == 1

    page = client_a.get(f"/dashboard/payments/{public_id}")
    assert page.status_code == 200
    text = htmllib.unescape(page.get_data(as_text=True))
    assert "order-kept" in text
    assert text.count('class="badge badge-SUCCESS"') >= 1  # the history is whole
    assert "evt_gone_1" not in text
    assert client_a.get("/dashboard/events").status_code == 200
    assert client_a.get(f"/dashboard/events/{event_row_id}").status_code == 404
    assert client_a.get("/dashboard/payments").status_code == 200
    answer = client_a.get(f"/api/v1/payments/{public_id}", headers=auth_headers(tenants.a_key))
    assert answer.status_code == 200
    assert [h["to"] for h in answer.get_json()["status_history"]][-1] == "SUCCESS"


def test_the_purge_works_on_the_demo_database(sqlite_app):
    with sqlite_app.app_context():
        merchant, _ = add_merchant("demo")
        payment = add_payment(merchant.id, status="SUCCESS")
        db.session.flush()
        aged.psp_event(payment, days=100)
        aged.notification(payment, days=100, status="delivered", attempts=2)
        aged.notification(payment, days=100, status="pending")
        aged.key_record(merchant.id, timedelta(days=3), COMPLETED)
        db.session.commit()

        report = purge()

        assert report.rows["psp_events"] == 1
        assert report.rows["notifications"] == 1 and report.rows["notification_attempts"] == 2
        assert report.rows["idempotency_keys"] == 1
        assert db.session.query(Notification).one().status == "pending"
