"""`flask recon run|runs`, the periodic job, and the run's behaviour when Redis is down."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from redis import Redis

from app.extensions import db, get_redis
from app.models import ReconciliationRun, utcnow
from app.reconciliation.service import run_reconciliation
from app.tasks.recon import run_scheduled_reconciliation
from tests.reconciliation.conftest import reload, set_expired
from tests.support.psp import pay_session


def test_cli_run_prints_a_summary_and_corrects(recon, runner, emulator, new_payment):
    payment = new_payment()
    pay_session(emulator, payment.psp_session_id)

    result = runner.invoke(args=["recon", "run"])

    assert result.exit_code == 0, result.output
    assert payment.public_id in result.output
    assert "INITIATED" in result.output and "SUCCESS" in result.output
    assert "corrected                  1" in result.output
    assert "status                     succeeded" in result.output
    assert reload(payment.id).status == "SUCCESS"
    run = db.session.execute(db.select(ReconciliationRun)).scalar_one()
    assert run.trigger == "cli"


def test_cli_dry_run_says_what_it_would_do(recon, runner, new_payment):
    payment = new_payment()
    set_expired(payment.id)

    result = runner.invoke(args=["recon", "run", "--dry-run"])

    assert result.exit_code == 0, result.output
    assert "would_expire" in result.output and "(dry run)" in result.output
    assert "would correct              1" in result.output
    assert reload(payment.id).status == "INITIATED"


def test_cli_one_payment(recon, runner, emulator, new_payment):
    payment = new_payment()
    pay_session(emulator, payment.psp_session_id)

    dry = runner.invoke(args=["recon", "run", "--dry-run", "--payment", payment.public_id])
    assert dry.exit_code == 0, dry.output
    assert "would_apply" in dry.output and reload(payment.id).status == "INITIATED"

    result = runner.invoke(args=["recon", "run", "--payment", payment.public_id])
    assert result.exit_code == 0, result.output
    assert "status now: SUCCESS" in result.output
    assert reload(payment.id).status == "SUCCESS"

    missing = runner.invoke(args=["recon", "run", "--payment", "pay_nope"])
    assert missing.exit_code != 0 and "no payment 'pay_nope'" in missing.output


def test_cli_runs_lists_recent_runs(recon, runner):
    assert "No reconciliation runs yet." in runner.invoke(args=["recon", "runs"]).output
    run_reconciliation(trigger="schedule")
    run_reconciliation(trigger="cli", dry_run=True)

    result = runner.invoke(args=["recon", "runs", "--limit", "5"])

    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 3
    assert "cli" in lines[1] and "yes" in lines[1]  # newest first
    assert "schedule" in lines[2] and "succeeded" in lines[2]
    # The wide pass's watermark: moved by the real run, never by the dry one.
    assert "SESSIONS COMPARED TO" in lines[0]
    real = db.session.execute(
        db.select(ReconciliationRun).where(ReconciliationRun.trigger == "schedule")
    ).scalar_one()
    assert f"{real.sessions_compared_until:%Y-%m-%d %H:%M:%S}" in lines[2]
    assert lines[1].split()[11] == "-"


def test_scheduled_job_runs_with_trigger_schedule(recon, emulator, new_payment):
    payment = new_payment()
    pay_session(emulator, payment.psp_session_id)

    run_id = run_scheduled_reconciliation()

    run = db.session.get(ReconciliationRun, run_id)
    assert (run.trigger, run.status, run.corrected) == ("schedule", "succeeded", 1)
    assert reload(payment.id).status == "SUCCESS"


@pytest.fixture
def redis_down(recon):
    """Point the app's Redis client at a port where nothing listens, for this test only."""
    saved = get_redis(recon)
    recon.extensions["paybridge_redis"] = Redis.from_url(
        "redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2
    )
    yield
    recon.extensions["paybridge_redis"] = saved


def test_without_redis_the_runs_table_decides_and_runs_still_never_overlap(
    recon, emulator, new_payment, redis_down
):
    payment = new_payment()
    pay_session(emulator, payment.psp_session_id)
    # Another run is in progress (its row is recent and still running).
    other = ReconciliationRun(trigger="schedule", status="running", started_at=utcnow())
    db.session.add(other)
    db.session.commit()

    skipped = run_reconciliation(trigger="schedule")

    assert skipped.status == "skipped"
    assert reload(payment.id).status == "INITIATED"

    # That run died long ago (older than its time budget plus the lock's TTL): it is closed and
    # this run goes ahead, on the database lease.
    other.started_at = utcnow() - timedelta(hours=1)
    db.session.commit()

    run = run_reconciliation(trigger="schedule")

    assert run.status == "succeeded" and run.corrected == 1 and run.error_text is None
    assert reload(payment.id).status == "SUCCESS"
    db.session.refresh(other)
    assert other.status == "failed" and "interrupted" in other.error_text


def test_without_redis_two_runs_started_together_never_both_work(
    recon, emulator, new_payment, redis_down
):
    payments = [new_payment() for _ in range(3)]
    for p in payments:
        pay_session(emulator, p.psp_session_id)
    recon.config["RECON_RATE_LIMIT_PER_SECOND"] = 4.0  # each run lasts over a second
    start = threading.Barrier(2)
    statuses: list[str] = []

    def one_run():
        with recon.app_context():
            start.wait()
            statuses.append(run_reconciliation(trigger="cli").status)

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert sorted(statuses) == ["skipped", "succeeded"]
    assert [reload(p.id).status for p in payments] == ["SUCCESS"] * 3


def test_a_run_started_while_redis_was_down_keeps_its_lease_when_redis_returns(recon):
    from app.reconciliation.service import DB_LEASE_NOTE

    leased = ReconciliationRun(
        trigger="schedule", status="running", started_at=utcnow(), error_text=DB_LEASE_NOTE
    )
    db.session.add(leased)
    db.session.commit()

    run = run_reconciliation(trigger="schedule")  # Redis is back: it takes the Redis lock

    assert run.status == "skipped"
    db.session.refresh(leased)
    assert leased.status == "running"


def test_a_failed_run_makes_the_job_fail_so_rq_records_it(recon, emulator, new_payment):
    new_payment()
    # Both listings refused: the run fails (its passes are recorded), and so does the job.
    emulator.control("POST", "faults", {"kind": "http_500", "path": "/v1/events", "count": 1})
    with pytest.raises(RuntimeError, match="failed"):
        run_scheduled_reconciliation()
    run = db.session.execute(db.select(ReconciliationRun)).scalar_one()
    assert run.status == "failed" and "events" in run.error_text


def test_without_redis_a_dry_run_still_reads_with_the_in_process_cap(
    recon, emulator, new_payment, redis_down
):
    payment = new_payment()
    pay_session(emulator, payment.psp_session_id)

    run = run_reconciliation(trigger="cli", dry_run=True)

    assert run.status == "succeeded" and run.corrected == 1
    assert reload(payment.id).status == "INITIATED"


def test_the_wide_pass_corrects_a_paid_session_and_survives_a_429_on_the_listing(
    recon, emulator, new_payment
):
    recon.config["RECON_STALE_AFTER_SECONDS"] = 3600  # nothing is stale: only the wide pass
    payments = [new_payment() for _ in range(3)]
    pay_session(emulator, payments[1].psp_session_id)
    emulator.control("POST", "faults", {"kind": "http_500", "path": "/v1/events", "count": 1})
    emulator.control(
        "POST", "faults", {"kind": "http_429", "path": "/v1/checkout/sessions", "count": 1}
    )

    run = run_reconciliation(trigger="cli")

    assert [reload(p.id).status for p in payments] == ["INITIATED", "SUCCESS", "INITIATED"]
    [entry] = [d for d in run.details if d.get("payment") == payments[1].public_id]
    assert (entry["from"], entry["to"], entry["action"]) == ("INITIATED", "SUCCESS", "applied")
    summary = [d for d in run.details if d.get("action") == "summary"][0]
    assert summary["rate_limited"] == 1 and summary["sessions_listed"] == 3
