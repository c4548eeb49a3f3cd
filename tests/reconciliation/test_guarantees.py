"""What reconciliation promises: runs never overlap, the PSP is never flooded, a crash leaves
nothing half-done, and every payment ends final after its session's expiry."""

from __future__ import annotations

import threading
import time

import pytest

from app.extensions import db, get_redis
from app.models import Notification, PaymentStatusChange, ReconciliationRun
from app.reconciliation.lock import RunLock
from app.reconciliation.ratelimit import add_call_observer, remove_call_observer
from app.reconciliation.service import run_reconciliation, summarize
from tests.reconciliation.conftest import outside_window, reload, set_expired
from tests.support.factories import FINAL_NEWS
from tests.support.psp import checkout_sessions, pay_session


def test_a_second_run_while_one_holds_the_lock_is_recorded_as_skipped(recon, new_payment):
    payment = new_payment()
    holder = RunLock(get_redis(), 30)
    assert holder.acquire()
    try:
        run = run_reconciliation(trigger="schedule")
    finally:
        holder.release()
    assert run.status == "skipped" and run.finished_at is not None
    assert run.checked == 0
    assert reload(payment.id).status_version == payment.status_version
    # Released: the next run works.
    assert run_reconciliation(trigger="schedule").status == "succeeded"


def test_two_runs_started_together_one_works_one_skips(recon, emulator, new_payment):
    payments = [new_payment() for _ in range(4)]
    for p in payments:
        pay_session(emulator, p.psp_session_id)
    recon.config["RECON_RATE_LIMIT_PER_SECOND"] = 4.0  # a run lasts ~1.5 s: they overlap
    start = threading.Barrier(2)
    results: list[ReconciliationRun] = []

    def one_run():
        with recon.app_context():
            start.wait()
            run = run_reconciliation(trigger="cli")
            results.append((run.status, run.corrected))

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert sorted(results) == [("skipped", 0), ("succeeded", 4)]
    assert all(reload(p.id).status == "SUCCESS" for p in payments)
    finals = db.select(db.func.count()).select_from(Notification).where(FINAL_NEWS)
    assert db.session.scalar(finals) == 4
    assert not RunLock(get_redis(), 1).holder_exists()  # released


def test_psp_calls_never_exceed_the_rate_cap(recon, new_payment, psp_calls):
    # Open sessions older than the listed window: one retrieve each, on the stale pass's threads.
    payments = [new_payment() for _ in range(15)]
    for p in payments:
        outside_window(p.id)
    recon.config["RECON_RATE_LIMIT_PER_SECOND"] = 5.0

    run = run_reconciliation(trigger="cli")

    assert run.status == "succeeded" and run.checked == 15 and run.still_open == 15
    retrieves = [at for op, at in psp_calls if op == "retrieve_session"]
    assert len(retrieves) == len(payments)
    times = sorted(at for _op, at in psp_calls)
    assert len(times) == summarize(run.details)["psp_calls"] >= 17  # + events and sessions lists
    # No one-second window holds more than the cap allows.
    for i, first in enumerate(times):
        in_window = [t for t in times[i:] if t < first + 1.0]
        assert len(in_window) <= 5 + 1, (i, in_window)
    # At 5 calls/s, 17 calls take at least 16 intervals of 0.2 s.
    assert times[-1] - times[0] >= (len(times) - 1) / 5.0 - 0.1


def test_the_cap_is_shared_by_runs_in_other_processes(recon):
    """The bucket lives in Redis: two caps (two processes) share one budget."""
    from app.reconciliation.ratelimit import RateCap

    times: list[float] = []
    caps = [RateCap(10.0, redis=get_redis(), key="paybridge:test:shared") for _ in range(2)]

    def hammer(cap):
        for _ in range(5):
            cap.acquire("x")
            times.append(time.time())

    threads = [threading.Thread(target=hammer, args=(cap,)) for cap in caps]
    # Measured from before the first call: the first call's own timestamp may be taken late
    # on a busy machine (its thread not scheduled at once), the last can only be later still.
    started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    times.sort()
    assert len(times) == 10
    assert times[-1] - started >= 0.9  # 10 calls at 10/s, not 2 × 10/s (which take 0.4 s)


def test_a_psp_rate_limit_slows_the_run_down_instead_of_failing_it(recon, emulator, new_payment):
    payment = new_payment()
    outside_window(payment.id)  # checked with a retrieve of its own
    pay_session(emulator, payment.psp_session_id)
    # Skip the events pass's fix so the retrieve is what gets rate limited.
    emulator.control("POST", "faults", {"kind": "http_500", "path": "/v1/events", "count": 1})
    emulator.control(
        "POST", "faults", {"kind": "http_429", "path": "/v1/checkout/sessions/cs_", "count": 2}
    )

    run = run_reconciliation(trigger="cli")

    assert reload(payment.id).status == "SUCCESS"
    summary = summarize(run.details)
    assert summary["rate_limited"] == 2
    assert [d for d in run.details if d.get("payment") == payment.public_id][0]["to"] == "SUCCESS"
    assert run.errors == 1  # only the events listing (HTTP 500), not the 429s


def test_a_psp_rate_limit_that_never_ends_is_one_error_and_the_run_goes_on(
    recon, emulator, new_payment
):
    recon.config["RECON_RATE_LIMIT_MAX_RETRIES"] = 1
    first, second = new_payment(), new_payment()
    for p in (first, second):
        outside_window(p.id)  # checked with a retrieve each
    pay_session(emulator, second.psp_session_id)
    emulator.control(
        "POST",
        "faults",
        {"kind": "http_429", "path": f"/v1/checkout/sessions/{first.psp_session_id}", "count": 5},
    )

    run = run_reconciliation(trigger="cli")

    assert reload(second.id).status == "SUCCESS"
    assert reload(first.id).status == "INITIATED"
    [failed] = [d for d in run.details if d.get("payment") == first.public_id]
    assert "rate limit" in failed["error"]
    assert run.errors == 1 and run.status == "succeeded"
    emulator.control("DELETE", "faults")


def _assert_whole_or_untouched(payments) -> list[str]:
    statuses = [reload(p.id).status for p in payments]
    for p, status in zip(payments, statuses, strict=True):
        changes = db.session.scalar(
            db.select(db.func.count())
            .select_from(PaymentStatusChange)
            .where(PaymentStatusChange.payment_id == p.id)
        )
        sent = db.session.scalar(
            db.select(db.func.count())
            .select_from(Notification)
            .where(Notification.payment_id == p.id, FINAL_NEWS)
        )
        # Corrected ones are whole (status, history row, outbox row); the others untouched.
        assert status in ("SUCCESS", "INITIATED")
        assert (changes, sent) == ((3, 1) if status == "SUCCESS" else (2, 0))
    return statuses


class Crash(BaseException):
    """Stands for the process dying (SIGKILL, OOM) in the middle of a run."""


def _crash_then_recover(payments, crashing_run) -> None:
    with pytest.raises(Crash):
        crashing_run()
    db.session.rollback()

    statuses = _assert_whole_or_untouched(payments)
    assert "INITIATED" in statuses  # it died before the end
    dead = db.session.execute(db.select(ReconciliationRun)).scalar_one()
    assert dead.status == "running"
    assert not RunLock(get_redis(), 1).holder_exists()  # the finally released it

    nxt = run_reconciliation(trigger="cli")

    assert nxt.status == "succeeded"
    assert [reload(p.id).status for p in payments] == ["SUCCESS"] * len(payments)
    db.session.refresh(dead)
    assert dead.status == "failed" and "interrupted" in dead.error_text


def test_a_crash_mid_run_leaves_each_payment_corrected_or_untouched(recon, emulator, new_payment):
    payments = [new_payment() for _ in range(4)]
    for p in payments:
        outside_window(p.id)  # a retrieve each, on the stale pass's threads
        pay_session(emulator, p.psp_session_id)
    emulator.control("POST", "faults", {"kind": "http_500", "path": "/v1/events", "count": 1})
    retrieves = []
    counting = threading.Lock()

    def crash_on_third_retrieve(operation: str, _at: float) -> None:
        if operation == "retrieve_session":
            with counting:
                retrieves.append(operation)
                third = len(retrieves) == 3
            if third:
                raise Crash()

    add_call_observer(crash_on_third_retrieve)
    try:
        _crash_then_recover(payments, lambda: run_reconciliation(trigger="cli"))
    finally:
        remove_call_observer(crash_on_third_retrieve)


def test_a_crash_while_applying_a_listed_page_leaves_each_payment_corrected_or_untouched(
    recon, emulator, new_payment, monkeypatch
):
    from app.reconciliation import reconciler

    payments = [new_payment() for _ in range(4)]
    for p in payments:
        pay_session(emulator, p.psp_session_id)
    emulator.control("POST", "faults", {"kind": "http_500", "path": "/v1/events", "count": 1})
    applied = []
    real_apply = reconciler.apply_session

    def crash_on_third(payment_id, session, **kwargs):
        applied.append(payment_id)
        if len(applied) == 3:
            raise Crash()
        return real_apply(payment_id, session, **kwargs)

    monkeypatch.setattr(reconciler, "apply_session", crash_on_third)

    def crash_then_unpatch():
        try:
            run_reconciliation(trigger="cli")
        finally:
            monkeypatch.setattr(reconciler, "apply_session", real_apply)

    _crash_then_recover(payments, crash_then_unpatch)
    assert len(applied) == 3  # all four were on one listed page


def test_every_payment_is_final_one_run_after_its_session_expired(recon, emulator, new_payment):
    """DESIGN.md: every payment ends SUCCESS or FAILED at the latest one reconciliation
    interval after its session's expiry — whatever non-final status it was left in."""
    # PENDING (delayed method), settled later at the PSP; no webhook ever comes.
    pending_ok = new_payment()
    pending_ko = new_payment()
    pay_session(emulator, pending_ok.psp_session_id, iban="DE89370400440532013000")
    pay_session(emulator, pending_ko.psp_session_id, iban="DE62370400440532013001")
    assert run_reconciliation(trigger="schedule").status == "succeeded"
    assert reload(pending_ok.id).status == reload(pending_ko.id).status == "PENDING"
    emulator.control("POST", f"checkout/sessions/{pending_ok.psp_session_id}/settle", {})
    emulator.control("POST", f"checkout/sessions/{pending_ko.psp_session_id}/settle", {})
    # CREATED, session made but the answer lost.
    emulator.control(
        "POST", "faults", {"kind": "lose_response", "path": "/v1/checkout/sessions", "count": 1}
    )
    created_lost = new_payment(expect_error=True)
    # CREATED, the PSP never reached.
    emulator.control(
        "POST", "faults", {"kind": "http_500", "path": "/v1/checkout/sessions", "count": 1}
    )
    created_unreached = new_payment(expect_error=True)
    # INITIATED, the shopper never paid.
    abandoned = new_payment()
    # INITIATED, paid but the webhook never came.
    paid = new_payment()
    pay_session(emulator, paid.psp_session_id)
    everyone = (created_lost, created_unreached, abandoned, paid, pending_ok, pending_ko)
    assert [reload(p.id).status for p in everyone] == (
        ["CREATED", "CREATED", "INITIATED", "INITIATED", "PENDING", "PENDING"]
    )

    # Every session's expiry passes (on the PSP's clock and on PayBridge's record), one run.
    ttl = recon.config["CHECKOUT_SESSION_TTL_SECONDS"]
    emulator.control("POST", "clock/advance", {"seconds": ttl + 60})
    for p in everyone:
        if reload(p.id).psp_expires_at:
            set_expired(p.id)
    run = run_reconciliation(trigger="schedule")

    final = {
        name: reload(p.id).status
        for name, p in {
            "created_lost": created_lost,
            "created_unreached": created_unreached,
            "abandoned": abandoned,
            "paid": paid,
            "pending_ok": pending_ok,
            "pending_ko": pending_ko,
        }.items()
    }
    assert final == {
        "created_lost": "FAILED",
        "created_unreached": "FAILED",
        "abandoned": "FAILED",
        "paid": "SUCCESS",
        "pending_ok": "SUCCESS",
        "pending_ko": "FAILED",
    }
    assert run.status == "succeeded" and run.still_open == 0 and run.errors == 0
    # Never a second session; the payment the PSP never saw is refused a session that would
    # already be past its expiry (so it could never be paid) and fails.
    assert [len(checkout_sessions(emulator, p.public_id)) for p in everyone] == [1, 0, 1, 1, 1, 1]
    assert reload(abandoned.id).failure_code == "expired"


def test_a_run_that_loses_its_lock_stops_and_leaves_the_new_holder_alone(
    recon, new_payment, psp_calls
):
    for _ in range(16):
        outside_window(new_payment().id)  # a retrieve each, so the run lasts ~4 s
    recon.config.update(RECON_RATE_LIMIT_PER_SECOND=4.0, RECON_LOCK_TTL_SECONDS=3)
    redis = get_redis()
    thieves: list[RunLock] = []

    def expire_and_steal(operation: str, _at: float) -> None:
        # The run stalls past its TTL (simulated by dropping the key) and another run takes over.
        if not thieves and operation == "retrieve_session":
            redis.delete(RunLock(redis, 1).key)
            thief = RunLock(redis, 30)
            assert thief.acquire()
            thieves.append(thief)

    add_call_observer(expire_and_steal)
    try:
        run = run_reconciliation(trigger="schedule")
    finally:
        remove_call_observer(expire_and_steal)

    assert run.status == "failed" and "lock" in run.error_text
    # It stopped instead of working alongside the new holder: only the checks already under
    # way on its threads (each its own transaction under the row lock) finished.
    assert run.checked < 16
    assert redis.get(thieves[0].key).decode() == thieves[0].token  # not released by the loser
    thieves[0].release()


def test_the_wide_pass_follows_the_cursor_over_pages_one_capped_call_per_page(
    recon, stripe_client, psp_calls
):
    for i in range(105):  # another integration's sessions on the same account
        stripe_client.v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "line_items": [
                    {
                        "price_data": {
                            "currency": "eur",
                            "unit_amount": 100 + i,
                            "product_data": {"name": "x"},
                        },
                        "quantity": 1,
                    }
                ],
                "success_url": "https://other.example/ok",
                "cancel_url": "https://other.example/no",
            }
        )

    run = run_reconciliation(trigger="cli")

    summary = summarize(run.details)
    assert summary["sessions_listed"] == summary["unknown_sessions"] == 105
    assert [op for op, _ in psp_calls].count("list_sessions") == 2
    # Open sessions of someone else: counted, not listed line by line.
    assert [d for d in run.details if d.get("action") == "unknown_session"] == []
