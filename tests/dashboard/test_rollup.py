"""The overview's payment rollup (app/reporting/rollup.py) against MariaDB: the figures it
gives equal the live aggregation of the payments, for merchants, modes, currencies and zones
(Asia/Kathmandu's +05:45, DST days), after statuses change, attempts come and commits are late;
its worker run is idempotent and one at a time; the rebuild command; the plans of its reads."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, insert, select

from app.extensions import db, get_redis
from app.models import Payment, PaymentAttempt, PaymentRollup, RollupWatermark, utcnow
from app.reconciliation.lock import RunLock
from app.reporting import overview, rollup
from app.reporting.periods import Period
from tests.support.factories import CANCEL_URL, SUCCESS_URL, new_payment_id
from tests.support.pages import logged_in

ZONES = ("UTC", "Asia/Kathmandu", "Asia/Kolkata", "America/New_York", "Europe/Paris")
# Europe's clocks went back on 25 Oct 2026, America's on 1 Nov 2026.
FIRST, LAST = date(2026, 10, 20), date(2026, 11, 9)
NOW = datetime(2026, 11, 9, 15, 7, 31)  # inside the last day: the previous period is cut
REASONS = ("declined", "expired", "canceled_by_shopper", None)
METHODS = (("card", "visa"), ("card", "mastercard"), ("sepa_debit", None), (None, None))


def _rows(merchant_id: int, rng: random.Random, n: int, prefix: str = "r") -> list[dict]:
    start = datetime(2026, 9, 28)
    span = int((datetime(2026, 11, 10, 12) - start).total_seconds())
    rows = []
    for i in range(n):
        created = start + timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(10**6))
        status = rng.choice(("SUCCESS", "SUCCESS", "FAILED", "INITIATED", "CREATED", "PENDING"))
        method_type, brand = rng.choice(METHODS) if status == "SUCCESS" else (None, None)
        rows.append(
            {
                "public_id": new_payment_id(),
                "merchant_id": merchant_id,
                "merchant_reference": f"{prefix}-{merchant_id}-{i}",
                "amount": rng.randrange(50, 50_000),
                "currency": rng.choice(("EUR", "EUR", "USD", "INR")),
                "payment_type": "SALE",
                "success_url": SUCCESS_URL,
                "cancel_url": CANCEL_URL,
                "metadata_": {},
                "status": status,
                "status_version": 1,
                "livemode": rng.random() < 0.3,
                "failure_reason": rng.choice(REASONS) if status == "FAILED" else None,
                "method_type": method_type,
                "card_brand": brand,
                "created_at": created,
                # Written a while ago: what a rebuild now folds in.
                "updated_at": utcnow() - timedelta(hours=1),
            }
        )
    return rows


@pytest.fixture
def varied(app, tenants):
    rng = random.Random(27)
    with app.app_context():
        for merchant_id in (tenants.a_id, tenants.b_id):
            db.session.execute(insert(Payment), _rows(merchant_id, rng, 1000))
        not_paid = db.session.scalars(
            select(Payment.id).where(Payment.status.in_(("FAILED", "INITIATED")))
        ).all()
        db.session.execute(
            insert(PaymentAttempt),
            [
                {"payment_id": pid, "outcome": "failed", "psp_event_id": f"evt_{pid}"}
                for pid in rng.sample(not_paid, len(not_paid) // 3)
            ],
        )
        # Paid ones: accepted at once, or declined first (two attempts, one accepted).
        paid = db.session.scalars(select(Payment.id).where(Payment.status == "SUCCESS")).all()
        tried = rng.sample(paid, len(paid) // 2)
        db.session.execute(
            insert(PaymentAttempt),
            [
                {
                    "payment_id": pid,
                    "outcome": outcome,
                    "psp_event_id": f"{outcome}_{pid}",
                    # Settled long ago: the rollup's first run folds them all in.
                    "created_at": utcnow() - timedelta(hours=1),
                }
                for n, pid in enumerate(tried)
                for outcome in (("failed", "succeeded") if n % 4 == 0 else ("succeeded",))
            ],
        )
        db.session.commit()
    app.config["ROLLUP_COMMIT_LAG_SECONDS"] = 60
    yield tenants
    app.config["ROLLUP_COMMIT_LAG_SECONDS"] = 300


def _figures(merchant_id, livemode, zone, first=FIRST, last=LAST):
    period = Period(first, last, ZoneInfo(zone))
    return overview.figures(merchant_id=merchant_id, livemode=livemode, period=period, now=NOW)


def _live(merchant_id, livemode, zone, **days):
    """The figures aggregated from the payments alone (no watermark: the live path)."""
    row = db.session.get(RollupWatermark, rollup.WATERMARK)
    saved = None if row is None else (row.updated_before, row.attempts_through)
    if row is not None:
        db.session.delete(row)
        db.session.commit()
    try:
        return _figures(merchant_id, livemode, zone, **days)
    finally:
        if saved is not None:
            db.session.add(
                RollupWatermark(
                    name=rollup.WATERMARK, updated_before=saved[0], attempts_through=saved[1]
                )
            )
            db.session.commit()


def _scopes(tenants):
    for merchant_id in (tenants.a_id, tenants.b_id, None):
        for livemode in (False, True):
            for zone in ZONES:
                yield merchant_id, livemode, zone


def _rollup_rows():
    return sorted(
        tuple(r)
        for r in db.session.execute(
            select(
                PaymentRollup.merchant_id,
                PaymentRollup.livemode,
                PaymentRollup.bucket_start,
                PaymentRollup.currency,
                PaymentRollup.status,
                PaymentRollup.failure_reason,
                PaymentRollup.method_type,
                PaymentRollup.card_brand,
                PaymentRollup.payments,
                PaymentRollup.amount,
                PaymentRollup.attempts,
                PaymentRollup.attempts_succeeded,
            )
        )
    )


def _assert_rollup_equals_live(tenants):
    for merchant_id, livemode, zone in _scopes(tenants):
        rolled = _figures(merchant_id, livemode, zone)
        assert rolled == _live(merchant_id, livemode, zone), (merchant_id, livemode, zone)


def test_the_rollup_gives_the_live_figures_in_every_zone(app, varied):
    with app.app_context():
        expected = {s: _live(*s) for s in _scopes(varied)}
        # No commit in flight here: the run may take everything written before it.
        app.config["ROLLUP_COMMIT_LAG_SECONDS"] = 0
        assert rollup.refresh().rebuilt  # the first run rebuilds
        for scope, figures in expected.items():
            merchant_id, livemode, zone = scope
            period = Period(FIRST, LAST, ZoneInfo(zone))
            # Nothing changed since the watermark: every bucket comes from the rollup.
            live = rollup.live_buckets(
                merchant_id=merchant_id,
                livemode=livemode,
                start=period.previous().start,
                end=period.end,
            )
            assert live == set(), scope
            assert _figures(*scope) == figures, scope
            assert figures.counts.started > 0 and figures.currencies, scope
            counts = figures.counts
            assert counts.attempts > counts.attempts_succeeded > 0, scope
        # A one-day range over Europe's and America's 25-hour days, Kathmandu's quarter hours.
        for zone, day in (
            ("Europe/Paris", date(2026, 10, 25)),
            ("America/New_York", date(2026, 11, 1)),
            ("Asia/Kathmandu", date(2026, 11, 2)),
        ):
            rolled = _figures(varied.a_id, False, zone, first=day, last=day)
            assert rolled == _live(varied.a_id, False, zone, first=day, last=day)
            assert rolled.counts.started > 0


def test_changes_after_the_rollup_are_read_live_then_folded_in(app, varied):
    with app.app_context():
        rollup.refresh()
        rows_before = _rollup_rows()
        # Statuses change after being rolled up (the ORM stamps updated_at), an attempt comes
        # for a payment it does not touch, new payments arrive.
        changed = db.session.scalars(
            select(Payment).where(Payment.status == "INITIATED").limit(40)
        ).all()
        for i, payment in enumerate(changed):
            payment.status = "SUCCESS" if i % 2 else "FAILED"
            payment.failure_reason = None if i % 2 else "declined"
        created = db.session.scalars(select(Payment.id).where(Payment.status == "CREATED")).all()
        db.session.execute(
            insert(PaymentAttempt),
            [
                {"payment_id": pid, "outcome": "failed", "psp_event_id": f"new_{pid}"}
                for pid in created[:30]
            ],
        )
        db.session.commit()
        arrived = _rows(varied.a_id, random.Random(5), 50, prefix="new")
        for row in arrived:
            row["updated_at"] = utcnow()
        db.session.execute(insert(Payment), arrived)
        db.session.commit()
        assert _rollup_rows() == rows_before  # the writes themselves did nothing to it
        # Read live where changed (some buckets, not the range): exact before the worker runs.
        period = Period(FIRST, LAST, ZoneInfo("UTC"))
        live = rollup.live_buckets(
            merchant_id=varied.a_id, livemode=False, start=period.start, end=period.end
        )
        assert live is not None and 0 < len(live) < 100
        _assert_rollup_equals_live(varied)

        rollup.refresh()
        assert _rollup_rows() != rows_before
        app.config["ROLLUP_COMMIT_LAG_SECONDS"] = 0
        _assert_rollup_equals_live(varied)
        # Idempotent: a second run, and a rebuild, leave the same rows.
        folded = _rollup_rows()
        rollup.refresh()
        assert _rollup_rows() == folded
        rollup.rebuild()
        assert _rollup_rows() == folded


def test_a_late_commit_within_the_lag_is_folded_in(app, varied):
    with app.app_context():
        rollup.refresh()
        mark = rollup.watermark()
        assert mark is not None
        # A transaction stamped its payment 30 s before the run's watermark and committed
        # after that run had read: the next run re-reads the lag (60 s) before the watermark.
        row = _rows(varied.a_id, random.Random(9), 1, prefix="late")[0]
        row.update(
            status="SUCCESS",
            currency="EUR",
            amount=777_777,
            livemode=False,
            created_at=datetime(2026, 11, 3, 10, 0),
            updated_at=mark.updated_before - timedelta(seconds=30),
        )
        db.session.execute(insert(Payment), [row])
        db.session.commit()
        rollup.refresh()
        app.config["ROLLUP_COMMIT_LAG_SECONDS"] = 0  # only the rollup now: is it in?
        rolled = db.session.scalar(
            select(PaymentRollup.amount).where(
                PaymentRollup.merchant_id == varied.a_id,
                PaymentRollup.bucket_start == datetime(2026, 11, 3, 10, 0),
                PaymentRollup.amount >= 777_777,
            )
        )
        assert rolled is not None
        _assert_rollup_equals_live(varied)


def test_one_run_at_a_time(app, varied):
    with app.app_context():
        other = RunLock(get_redis(), 60, key=f"{app.config['RQ_QUEUE_PREFIX']}:rollup:run-lock")
        assert other.acquire()
        try:
            assert rollup.refresh().skipped
            assert rollup.watermark() is None and _rollup_rows() == []
        finally:
            other.release()
        assert not rollup.refresh().skipped


def test_rebuild_command(app, varied):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["reporting", "rebuild", "--merchant", "999999"])
    assert result.exit_code == 2 and "No merchant with id 999999" in result.output
    result = runner.invoke(
        args=["reporting", "rebuild", "--merchant", str(varied.b_id), "--since", "2026-11-01"]
    )
    assert result.exit_code == 0, result.output
    assert "Recomputed" in result.output
    with app.app_context():
        merchants = {r[0] for r in _rollup_rows()}
        assert merchants == {varied.b_id}
        assert min(r[2] for r in _rollup_rows()) >= datetime(2026, 11, 1)
        assert rollup.watermark() is None  # a partial rebuild is no watermark
    result = runner.invoke(args=["reporting", "rebuild"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert rollup.watermark() is not None
        app.config["ROLLUP_COMMIT_LAG_SECONDS"] = 0
        _assert_rollup_equals_live(varied)


def test_the_page_reads_the_rollup_through_its_key(app, varied):
    with app.app_context():
        rollup.refresh()
    app.config["ROLLUP_COMMIT_LAG_SECONDS"] = 0
    captured: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "GROUP BY bucket" in statement:
            captured.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    client = logged_in(app, varied.a_email)
    event.listen(engine, "before_cursor_execute", capture)
    try:
        page = client.get("/dashboard/?range=custom&from=2026-10-20&to=2026-11-09")
        assert page.status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    rolled = [c for c in captured if "payment_rollup" in c[0]]
    assert len(rolled) == 1
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN " + rolled[0][0], rolled[0][1])
        columns = [d[0] for d in cursor.description]
        plan = [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]
    finally:
        raw.close()
    (row,) = plan
    assert row["key"] == "PRIMARY" and row["type"] == "range", row
    assert int(row["key_len"]) > 9, row  # merchant, mode and the buckets
    assert "filesort" not in (row["Extra"] or ""), row


def test_the_worker_runs_it_periodically(app, varied):
    from app.tasks.reporting import refresh_payment_rollup
    from app.tasks.schedule import PERIODIC_JOBS

    job = next(j for j in PERIODIC_JOBS if j.func is refresh_payment_rollup)
    assert job.interval_setting == "ROLLUP_INTERVAL_SECONDS" and job.queue == "default"
    with app.app_context():
        done = refresh_payment_rollup()
        assert done["skipped"] is False and done["rows"] > 0
        assert rollup.watermark() is not None
