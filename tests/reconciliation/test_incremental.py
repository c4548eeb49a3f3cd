"""The wide pass walks forward from where the previous runs left it (the watermark): a run cut
short or killed keeps the chunks it completed, the next one continues from there, and no run
lists the whole lookback window again."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest

from app.extensions import db
from app.models import Payment, ReconciliationRun, utcnow
from app.psp.stripe_adapter import from_unix, to_unix
from app.reconciliation.ratelimit import add_call_observer, remove_call_observer
from app.reconciliation.reconciler import CLOCK_MARGIN
from app.reconciliation.service import SESSIONS_OVERLAP, run_reconciliation, summarize
from tests.reconciliation.conftest import reload
from tests.support.psp import pay_session

CHUNK = 4  # payments (so sessions) per chunk of the wide pass
BUDGET = 5  # seconds: a run's time budget where a test makes it run out


@pytest.fixture
def wide(recon, emulator):
    """Only the wide pass can correct anything: nothing is stale, and the events pass is
    refused (so a paid session's lost webhook is not caught up from the PSP's events)."""
    recon.config.update(RECON_STALE_AFTER_SECONDS=3600, RECON_WIDE_CHUNK_SESSIONS=CHUNK)

    def run(**kwargs) -> ReconciliationRun:
        emulator.control("POST", "faults", {"kind": "http_500", "path": "/v1/events", "count": 1})
        return run_reconciliation(trigger="cli", **kwargs)

    return run


@pytest.fixture
def made_ago(emulator, new_payment):
    """Payments (with their sessions) made some minutes ago: the emulator's clock is moved
    back for them, and their rows dated to match. One of each batch is paid, its webhook lost."""

    def make(minutes: int) -> tuple[datetime, list[Payment]]:
        psp_now = emulator.control("GET", "clock")["now"]
        at = emulator.control("POST", "clock/advance", {"seconds": -minutes * 60})["now"]
        payments = [new_payment() for _ in range(CHUNK)]
        ids = [p.id for p in payments]
        made = from_unix(at)
        db.session.execute(db.update(Payment).where(Payment.id.in_(ids)).values(created_at=made))
        db.session.commit()
        emulator.control("POST", "clock/advance", {"seconds": psp_now - at})
        pay_session(emulator, payments[0].psp_session_id)
        return made, payments

    return make


def sessions(payments: list[Payment]) -> set[str]:
    return {p.psp_session_id for p in payments}


def listed(session_listings) -> set[str]:
    return {sid for _, ids in session_listings for sid in ids}


def since_values(session_listings) -> list[int]:
    return [int(query["created[gte]"]) for query, _ in session_listings]


def statuses(*batches: list[Payment]) -> list[str]:
    return [reload(batch[0].id).status for batch in batches]


def add_finished_run(*, at: datetime, watermark: datetime) -> None:
    """A scheduled run recorded as finished at `at` with the wide pass's `watermark`."""
    db.session.add(
        ReconciliationRun(
            trigger="schedule",
            status=ReconciliationRun.STATUS_SUCCEEDED,
            started_at=at,
            finished_at=at,
            sessions_compared_until=watermark,
        )
    )
    db.session.commit()


def on_list_call(number: int, action):
    """A call observer doing `action` just before the run's `number`th session listing call."""
    seen = []

    def observe(operation: str, _at: float) -> None:
        if operation == "list_sessions":
            seen.append(operation)
            if len(seen) == number:
                action()

    return observe


def test_a_run_out_of_time_keeps_its_completed_chunks_and_the_next_run_continues_there(
    recon, wide, made_ago, session_listings
):
    _older, a = made_ago(50)
    middle, b = made_ago(35)
    _newer, c = made_ago(20)
    recon.config["RECON_MAX_RUN_SECONDS"] = BUDGET
    # The PSP takes longer than the run's whole budget to answer the second chunk's listing.
    slow = on_list_call(2, lambda: time.sleep(BUDGET + 0.5))

    add_call_observer(slow)
    try:
        first = wide()
    finally:
        remove_call_observer(slow)

    # One chunk (the oldest batch) was compared; the second was listed, not compared.
    assert "time budget spent: the next run continues" in first.error_text
    assert first.sessions_compared_until == middle
    assert statuses(a, b, c) == ["SUCCESS", "INITIATED", "INITIATED"]
    window = first.started_at - timedelta(hours=recon.config["RECON_LOOKBACK_HOURS"])
    assert since_values(session_listings) == [to_unix(window), to_unix(middle)]
    session_listings.clear()

    recon.config["RECON_MAX_RUN_SECONDS"] = 60
    second = wide()

    # It began just below the first run's watermark: the second and third batches, not the
    # first again; the two runs together compared every session.
    assert since_values(session_listings)[0] == to_unix(middle - SESSIONS_OVERLAP)
    assert listed(session_listings) == sessions(b) | sessions(c)
    assert statuses(a, b, c) == ["SUCCESS", "SUCCESS", "SUCCESS"]
    assert (second.corrected, "time budget" in second.error_text) == (2, False)
    assert second.sessions_compared_until == second.started_at - CLOCK_MARGIN


def test_a_run_killed_mid_pass_keeps_the_chunks_it_completed(
    recon, emulator, wide, made_ago, session_listings
):
    _older, a = made_ago(50)
    middle, b = made_ago(35)
    _newer, c = made_ago(20)
    refuse = on_list_call(
        2,
        lambda: emulator.control(
            "POST", "faults", {"kind": "http_400", "path": "/v1/checkout/sessions", "count": 1}
        ),
    )

    add_call_observer(refuse)
    try:
        first = wide()
    finally:
        remove_call_observer(refuse)

    assert first.status == "failed" and "sessions:" in first.error_text
    assert first.sessions_compared_until == middle
    assert statuses(a, b, c) == ["SUCCESS", "INITIATED", "INITIATED"]
    session_listings.clear()

    second = wide()

    assert since_values(session_listings)[0] == to_unix(middle - SESSIONS_OVERLAP)
    assert listed(session_listings) == sessions(b) | sessions(c)
    assert statuses(a, b, c) == ["SUCCESS", "SUCCESS", "SUCCESS"]
    assert second.sessions_compared_until == second.started_at - CLOCK_MARGIN


def test_a_later_run_lists_only_the_sessions_since_the_watermark_and_a_dry_run_never_moves_it(
    recon, emulator, wide, made_ago, new_payment, session_listings
):
    _older, old = made_ago(50)
    first = wide()
    watermark = first.sessions_compared_until
    assert (reload(old[0].id).status, watermark) == ("SUCCESS", first.started_at - CLOCK_MARGIN)
    # The PSP now says something new about an old session (below the watermark) and a new one.
    pay_session(emulator, old[1].psp_session_id)
    new = new_payment()
    pay_session(emulator, new.psp_session_id)
    session_listings.clear()

    dry = wide(dry_run=True)
    assert dry.corrected == 1 and dry.sessions_compared_until is None
    real = wide()

    start = watermark - SESSIONS_OVERLAP
    assert since_values(session_listings) == [to_unix(start)] * 2  # the dry run, then the real
    assert listed(session_listings) == {new.psp_session_id}
    assert summarize(dry.details)["sessions_from"] == summarize(real.details)["sessions_from"]
    assert (reload(new.id).status, real.corrected) == ("SUCCESS", 1)
    # The old session's payment is still open: the stale pass retrieves it once it is stale.
    assert reload(old[1].id).status == "INITIATED"
    assert real.sessions_compared_until == real.started_at - CLOCK_MARGIN


def test_a_watermark_older_than_the_lookback_window_starts_at_the_window_and_says_so(
    recon, wide, new_payment, session_listings
):
    lookback = timedelta(hours=recon.config["RECON_LOOKBACK_HOURS"])
    long_ago = (utcnow() - lookback - timedelta(hours=5)).replace(microsecond=0)
    add_finished_run(at=long_ago, watermark=long_ago)
    payment = new_payment()

    run = wide()

    window = run.started_at - lookback
    assert since_values(session_listings) == [to_unix(window)]
    assert listed(session_listings) == {payment.psp_session_id}
    [skipped] = [d for d in run.details if d.get("action") == "sessions_skipped"]
    assert f"from {long_ago:%Y-%m-%d %H:%M:%S} to {window:%Y-%m-%d %H:%M:%S}" in skipped["why"]
    assert run.sessions_compared_until == run.started_at - CLOCK_MARGIN


def test_a_watermark_left_by_a_clock_ahead_is_passed_over_for_the_last_one_before_now(
    recon, wide, made_ago, session_listings
):
    # A run whose clock was a day ahead would otherwise set the start of every later wide pass
    # in the future: nothing created until real time caught up would ever be compared.
    _made, before = made_ago(50)
    sane = wide()
    ahead = utcnow() + timedelta(days=1)
    add_finished_run(at=ahead, watermark=ahead - CLOCK_MARGIN)
    _made, since = made_ago(2)
    session_listings.clear()

    run = wide()

    assert since_values(session_listings)[0] == to_unix(
        sane.sessions_compared_until - SESSIONS_OVERLAP
    )
    assert sessions(since) <= listed(session_listings)
    assert statuses(before, since) == ["SUCCESS", "SUCCESS"]
    assert run.sessions_compared_until == run.started_at - CLOCK_MARGIN
