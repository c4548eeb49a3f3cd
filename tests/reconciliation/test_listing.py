"""The stale pass settles stale payments from the PSP's list of sessions (100 a call) instead of
one retrieve each, with exactly the results one retrieve each would give."""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import Payment, PaymentStatusChange, utcnow
from app.psp.stripe_adapter import from_unix, to_unix
from app.reconciliation.reconciler import CLOCK_MARGIN, Reconciler
from app.reconciliation.service import run_reconciliation, summarize
from tests.reconciliation.conftest import reload, set_expired
from tests.support.psp import pay_session

CAP = 40.0
# role: how many stale INITIATED payments of that kind one set has (130: more than a page).
ROLES = {
    "paid": 40,  # paid by card, the webhook never came
    "expired_at_psp": 25,  # the PSP expired the session, the webhook never came
    "past_expiry": 20,  # open at the PSP, but PayBridge's record says it expired
    "open": 40,  # still open, not expired: left alone
    "sepa_failed": 3,  # delayed method that failed: only the payment intent tells
    "sepa_pending": 2,  # delayed method still processing
}


def make_stale_set(new_payment, emulator, stripe_client) -> dict[str, list[Payment]]:
    made: dict[str, list[Payment]] = {role: [] for role in ROLES}
    for role, count in ROLES.items():
        for _ in range(count):
            payment = new_payment()
            session = payment.psp_session_id
            if role == "paid":
                pay_session(emulator, session)
            elif role == "expired_at_psp":
                stripe_client.v1.checkout.sessions.expire(session)
            elif role == "past_expiry":
                set_expired(payment.id)
            elif role == "sepa_failed":
                pay_session(emulator, session, iban="DE62370400440532013001")
                emulator.control("POST", f"checkout/sessions/{session}/settle", {})
            elif role == "sepa_pending":
                pay_session(emulator, session, iban="DE89370400440532013000")
            made[role].append(payment)
    touch([p.id for ps in made.values() for p in ps], utcnow() - timedelta(hours=1))
    return made


def touch(ids: list[int], when) -> None:
    """Set the payments' updated_at: an hour ago makes them stale, now makes them fresh."""
    db.session.execute(db.update(Payment).where(Payment.id.in_(ids)).values(updated_at=when))
    db.session.commit()


def outcome(run, payment: Payment) -> tuple:
    """Everything a check leaves on one payment, without ids or times."""
    final = reload(payment.id)
    history = db.session.execute(
        db.select(PaymentStatusChange)
        .where(PaymentStatusChange.payment_id == payment.id)
        .order_by(PaymentStatusChange.id)
    ).scalars()
    entries = [d for d in run.details if d.get("payment") == payment.public_id]
    return (
        final.status,
        final.failure_code,
        final.psp_payment_intent_id is not None,
        tuple((h.from_status, h.to_status, h.source) for h in history),
        tuple((e["from"], e["to"], e["action"]) for e in entries),
    )


def outcomes(run, made) -> dict[str, Counter]:
    return {role: Counter(outcome(run, p) for p in ps) for role, ps in made.items()}


def calls_by_op(calls) -> Counter:
    return Counter(op for op, _ in calls)


# A call is observed when its thread wakes after the cap's slot, and on a loaded box threads
# wake late by tens of milliseconds: a late first call and a punctual last one put one window
# of slots into less than a second of observations. Counting over (1 s - jitter) asks exactly
# "no more than CAP slots in a second" of the cap, and still fails it at any rate above CAP.
WAKE_JITTER_SECONDS = 0.1


def max_in_one_second(calls) -> int:
    times = sorted(at for _, at in calls)
    window = 1.0 - WAKE_JITTER_SECONDS
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def record(run) -> tuple:
    return (run.status, run.checked, run.corrected, run.still_open, run.errors)


@pytest.fixture
def stale_setup(recon, emulator):
    recon.config.update(RECON_STALE_AFTER_SECONDS=600, RECON_RATE_LIMIT_PER_SECOND=CAP)

    def no_events() -> None:
        # The events pass would finish the paid and expired ones from their missed events:
        # make the PSP refuse it so the stale pass has to find them.
        emulator.control("POST", "faults", {"kind": "http_500", "path": "/v1/events", "count": 1})

    return no_events


def test_stale_payments_are_settled_from_listed_pages_as_retrieves_would_settle_them(
    recon, emulator, stripe_client, new_payment, psp_calls, stale_setup, monkeypatch
):
    total = sum(ROLES.values())
    listed = make_stale_set(new_payment, emulator, stripe_client)
    untouched = {p.id: reload(p.id).status_version for ps in listed.values() for p in ps}

    # A dry run over the listing reads and changes nothing.
    stale_setup()
    dry = run_reconciliation(trigger="cli", dry_run=True)
    assert {p: reload(p).status_version for p in untouched} == untouched
    assert calls_by_op(psp_calls)["expire_session"] == 0
    psp_calls.clear()

    stale_setup()
    run = run_reconciliation(trigger="cli")
    by_listing = outcomes(run, listed)
    calls = calls_by_op(psp_calls)

    # One list call per 100 sessions, for the stale pass and again for the wide pass (which
    # lists its own window); a retrieve only where a listing cannot tell (the payment intent of
    # a completed unpaid session); an expire where the PSP must close one.
    assert calls["list_sessions"] == 2 * math.ceil(total / 100)
    assert calls["retrieve_session"] == ROLES["sepa_failed"] + ROLES["sepa_pending"]
    assert calls["expire_session"] == ROLES["past_expiry"]
    assert set(calls) == {"list_events", "list_sessions", "retrieve_session", "expire_session"}
    assert max_in_one_second(psp_calls) <= CAP + 1
    summary = summarize(run.details)
    assert summary["sessions_listed"] == 2 * total  # once by each pass
    assert summary["psp_calls"] == len(psp_calls)
    assert dry.corrected == run.corrected == total - ROLES["open"]
    assert run.still_open == ROLES["open"] + ROLES["sepa_pending"]

    statuses = {role: {o[0] for o in c} for role, c in by_listing.items()}
    assert statuses == {
        "paid": {"SUCCESS"},
        "expired_at_psp": {"FAILED"},
        "past_expiry": {"FAILED"},
        "open": {"INITIATED"},
        "sepa_failed": {"FAILED"},
        "sepa_pending": {"PENDING"},
    }
    for role in ("paid", "expired_at_psp", "past_expiry", "sepa_failed", "sepa_pending"):
        for history in {o[3] for o in by_listing[role]}:
            assert history[-1][0] == "INITIATED" and history[-1][2] == "recon", (role, history)
    assert {o[1] for o in by_listing["past_expiry"]} == {"expired"}
    assert {o[1] for o in by_listing["expired_at_psp"]} == {"expired"}
    assert "expired" not in {o[1] for o in by_listing["sepa_failed"]}

    # The same set again, checked the old way (a retrieve per payment, the wide pass after).
    touch(list(untouched), utcnow())  # the first set is no longer stale
    retrieved = make_stale_set(new_payment, emulator, stripe_client)
    monkeypatch.setattr(Reconciler, "_check_listed_stale", lambda self, *a: None)
    psp_calls.clear()
    stale_setup()
    baseline = run_reconciliation(trigger="cli")

    assert calls_by_op(psp_calls)["retrieve_session"] == total
    assert max_in_one_second(psp_calls) <= CAP + 1  # its retrieves ran on several threads
    assert outcomes(baseline, retrieved) == by_listing
    assert record(baseline) == record(run)
    assert record(run)[0] == "failed" and "events" in run.error_text  # only the refused pass


def test_the_listing_stops_once_every_stale_payment_is_covered_and_the_wide_pass_lists_its_own(
    recon, emulator, new_payment, psp_calls, stale_setup, session_listings
):
    # Older, fresh payments (not stale), one of them paid without its webhook: the wide pass's.
    fresh = [new_payment() for _ in range(150)]
    pay_session(emulator, fresh[0].psp_session_id)
    emulator.control("POST", "clock/advance", {"seconds": 5})
    stale = [new_payment() for _ in range(120)]  # the newest sessions: listed first
    pay_session(emulator, stale[0].psp_session_id)
    touch([p.id for p in stale], utcnow() - timedelta(hours=1))
    stale_setup()

    run = run_reconciliation(trigger="cli")

    assert reload(stale[0].id).status == "SUCCESS"
    assert reload(fresh[0].id).status == "SUCCESS"  # compared by the wide pass
    assert all(reload(p.id).status == "INITIATED" for p in stale[1:] + fresh[1:])
    assert (run.checked, run.corrected, run.still_open) == (121, 2, 119)
    calls = calls_by_op(psp_calls)
    # The stale pass stopped after two pages (the stale range reaches the fresh ones, within
    # the clock margin, but every stale payment was covered); the wide pass listed its window,
    # every session, the oldest fresh one (paid) on its last page.
    since = str(to_unix(run.started_at - timedelta(hours=recon.config["RECON_LOOKBACK_HOURS"])))
    wide = [ids for query, ids in session_listings if query["created[gte]"] == since]
    assert (len(session_listings) - len(wide), len(wide)) == (2, math.ceil(270 / 100))
    assert fresh[0].psp_session_id in wide[-1]
    assert calls["list_sessions"] == len(session_listings)
    assert calls["retrieve_session"] == 0
    assert summarize(run.details)["sessions_listed"] == 200 + 270


def test_stale_payments_the_listing_cannot_cover_still_get_their_own_check(
    recon, emulator, new_payment, stripe_client, psp_calls, stale_setup
):
    listed = [new_payment() for _ in range(3)]
    emulator.control(
        "POST", "faults", {"kind": "lose_response", "path": "/v1/checkout/sessions", "count": 1}
    )
    created = new_payment(expect_error=True)  # CREATED: registered again, with its own key
    old = new_payment()
    db.session.execute(  # made before the wide pass's window
        db.update(Payment)
        .where(Payment.id == old.id)
        .values(created_at=utcnow() - timedelta(hours=recon.config["RECON_LOOKBACK_HOURS"] + 1))
    )
    db.session.commit()
    pay_session(emulator, listed[0].psp_session_id)
    pay_session(emulator, old.psp_session_id)
    everyone = [*listed, created, old]
    touch([p.id for p in everyone], utcnow() - timedelta(hours=1))
    stale_setup()

    run = run_reconciliation(trigger="cli")

    assert [reload(p.id).status for p in everyone] == [
        "SUCCESS",
        "INITIATED",
        "INITIATED",
        "INITIATED",
        "SUCCESS",
    ]
    assert reload(created.id).psp_session_id is not None
    calls = calls_by_op(psp_calls)
    assert calls["create_session"] == 1  # the CREATED one's registration
    assert calls["list_sessions"] == 2  # the stale range, then the wide pass's window
    # The listing (with every session, the old one's too) settles what it lists; the
    # registered one's session is retrieved right after its registration.
    assert calls["retrieve_session"] == 1
    assert (run.checked, run.still_open) == (5, 3)


def test_the_stale_pass_lists_only_its_payments_range_and_the_wide_pass_its_window(
    recon, emulator, stripe_client, new_payment, psp_calls, stale_setup, session_listings
):
    # Earlier traffic in the window: fresh payments, one of them paid without its webhook (the
    # wide pass's), and one stale payment whose session is older than PayBridge recorded it by
    # more than the clock margin: the stale range cannot hold it.
    earlier = [new_payment() for _ in range(250)]
    pay_session(emulator, earlier[0].psp_session_id)
    skewed = new_payment()
    pay_session(emulator, skewed.psp_session_id)
    # Ten minutes on at the PSP; the stale payments' rows are dated to match their sessions.
    later = from_unix(emulator.control("POST", "clock/advance", {"seconds": 600})["now"])
    stale = [new_payment() for _ in range(120)]
    pay_session(emulator, stale[0].psp_session_id)
    stripe_client.v1.checkout.sessions.expire(stale[1].psp_session_id)
    ids = [p.id for p in [*stale, skewed]]
    db.session.execute(db.update(Payment).where(Payment.id.in_(ids)).values(created_at=later))
    db.session.commit()
    touch(ids, utcnow() - timedelta(hours=1))
    stale_setup()

    run = run_reconciliation(trigger="cli")

    # The stale pass asked only for the sessions made since its oldest payment (less the
    # margin): two pages, all of them its payments'. The wide pass then asked for its whole
    # window (no earlier run left a watermark), in one chunk up to the newest session.
    floor = str(to_unix(later - CLOCK_MARGIN))
    since = str(to_unix(run.started_at - timedelta(hours=recon.config["RECON_LOOKBACK_HOURS"])))
    filters = [
        (query.get("created[gte]"), query.get("created[lt]")) for query, _ in session_listings
    ]
    assert filters == [(floor, None)] * 2 + [(since, None)] * 4
    listed = [set(ids) for _, ids in session_listings]
    assert set.union(*listed[:2]) == {p.psp_session_id for p in stale}
    assert set.union(*listed[2:]) == {p.psp_session_id for p in [*earlier, skewed, *stale]}
    assert summarize(run.details)["sessions_listed"] == 120 + 371

    assert [reload(p.id).status for p in stale[:2]] == ["SUCCESS", "FAILED"]
    assert all(reload(p.id).status == "INITIATED" for p in stale[2:] + earlier[1:])
    assert reload(skewed.id).status == "SUCCESS"  # its own retrieve, as before
    assert reload(earlier[0].id).status == "SUCCESS"  # the wide pass's comparison
    assert (run.checked, run.corrected, run.still_open) == (122, 4, 118)
    calls = calls_by_op(psp_calls)
    assert (calls["list_sessions"], calls["retrieve_session"]) == (6, 1)
    assert max_in_one_second(psp_calls) <= CAP + 1
