"""A reconciliation run against the emulator: what it finds, corrects, records and leaves alone."""

from __future__ import annotations

from prometheus_client import REGISTRY

from app.extensions import db
from app.models import (
    Notification,
    PaymentConflict,
    PaymentStatusChange,
    PspEvent,
    ReconciliationRun,
)
from app.reconciliation.service import reconcile_payment, run_reconciliation, summarize
from tests.reconciliation.conftest import reload, set_expired
from tests.support.factories import FINAL_NEWS
from tests.support.psp import checkout_sessions, pay_session
from tests.support.waiting import wait_until


def history(payment_id: int) -> list[tuple]:
    rows = db.session.execute(
        db.select(PaymentStatusChange)
        .where(PaymentStatusChange.payment_id == payment_id)
        .order_by(PaymentStatusChange.id)
    ).scalars()
    return [(r.from_status, r.to_status, r.source, r.psp_event_id) for r in rows]


def notifications(payment_id: int) -> list[Notification]:
    return list(
        db.session.execute(
            db.select(Notification).where(Notification.payment_id == payment_id, FINAL_NEWS)
        ).scalars()
    )


def entry_for(run: ReconciliationRun, public_id: str) -> dict:
    matches = [d for d in run.details if d.get("payment") == public_id]
    assert matches, run.details
    return matches[-1]


def test_a_payment_whose_webhook_never_came_is_finished_from_missed_events(
    recon, stripe_delivers, new_payment
):
    emulator = stripe_delivers
    emulator.control("POST", "deliveries/pause")
    payment = new_payment()
    pay_session(emulator, payment.psp_session_id)
    assert reload(payment.id).status == "INITIATED"  # the webhook is held back

    run = run_reconciliation(trigger="cli")

    payment = reload(payment.id)
    assert payment.status == "SUCCESS"
    completed = db.session.execute(
        db.select(PspEvent).where(PspEvent.event_type == "checkout.session.completed")
    ).scalar_one()
    assert completed.received_via == "recon" and completed.outcome == "applied"
    assert history(payment.id)[-1] == ("INITIATED", "SUCCESS", "recon", completed.event_id)
    assert (run.status, run.corrected, run.errors) == ("succeeded", 1, 0)
    entry = entry_for(run, payment.public_id)
    assert (entry["from"], entry["to"], entry["action"]) == ("INITIATED", "SUCCESS", "event")
    # Its charge's event too, handled first as it was made first: the method is known.
    assert summarize(run.details)["events_caught_up"] == 2
    assert (payment.method_type, payment.card_last4) == ("card", "4242")
    assert len(notifications(payment.id)) == 1

    # The webhook finally arrives: stored already, it changes nothing.
    emulator.control("POST", "deliveries/resume")

    def delivered():
        rows = emulator.control("GET", f"deliveries?event_id={completed.event_id}")["data"]
        return rows and all(r["status"] == "succeeded" for r in rows)

    wait_until(delivered, what="the held webhook delivered")
    assert reload(payment.id).status_version == payment.status_version
    assert len(notifications(payment.id)) == 1
    stored = db.session.scalar(
        db.select(db.func.count())
        .select_from(PspEvent)
        .where(PspEvent.event_id == completed.event_id)
    )
    assert stored == 1

    # A second run finds nothing left to do.
    again = run_reconciliation(trigger="cli")
    assert (again.status, again.corrected, summarize(again.details)["events_caught_up"]) == (
        "succeeded",
        0,
        0,
    )


def test_session_retrieve_applies_card_success_and_async_failure_when_events_are_unavailable(
    recon, emulator, new_payment
):
    card = new_payment()
    sepa = new_payment()
    pay_session(emulator, card.psp_session_id)
    pay_session(emulator, sepa.psp_session_id, iban="DE62370400440532013001")
    emulator.control("POST", f"checkout/sessions/{sepa.psp_session_id}/settle", {})
    # The Events API answers 500 this time: the pass fails, the per-payment pass still runs.
    emulator.control("POST", "faults", {"kind": "http_500", "path": "/v1/events", "count": 1})
    errors_before = REGISTRY.get_sample_value("paybridge_recon_errors_total") or 0

    run = run_reconciliation(trigger="cli")

    card, sepa = reload(card.id), reload(sepa.id)
    assert card.status == "SUCCESS"
    assert sepa.status == "FAILED"
    assert sepa.failure_code  # the payment intent's failure, not "expired"
    assert sepa.failure_code != "expired"
    assert history(card.id)[-1] == ("INITIATED", "SUCCESS", "recon", None)
    assert history(sepa.id)[-1] == ("INITIATED", "FAILED", "recon", None)
    assert run.status == "failed"  # a whole pass failed: the next run lists events again
    assert "events" in run.error_text
    assert run.corrected == 2 and run.errors == 1
    assert REGISTRY.get_sample_value("paybridge_recon_errors_total") == errors_before + 1
    assert entry_for(run, sepa.public_id)["why"].endswith("payment intent requires_payment_method")


def test_an_open_session_past_its_expiry_is_expired_at_the_psp_and_failed(
    recon, emulator, new_payment, stripe_client
):
    payment = new_payment()
    set_expired(payment.id)

    run = run_reconciliation(trigger="schedule")

    payment = reload(payment.id)
    assert payment.status == "FAILED" and payment.failure_code == "expired"
    assert history(payment.id)[-1][:3] == ("INITIATED", "FAILED", "recon")
    session = stripe_client.v1.checkout.sessions.retrieve(payment.psp_session_id)
    assert session.status == "expired"
    assert entry_for(run, payment.public_id)["action"] == "expired"
    assert len(notifications(payment.id)) == 1


def test_a_created_payment_is_registered_with_its_own_session_never_a_second(
    recon, emulator, new_payment
):
    # The PSP makes the session but its answer is lost: PayBridge keeps the payment CREATED.
    emulator.control(
        "POST", "faults", {"kind": "lose_response", "path": "/v1/checkout/sessions", "count": 1}
    )
    payment = new_payment(expect_error=True)
    assert payment.status == "CREATED" and payment.psp_session_id is None
    [made] = checkout_sessions(emulator, payment.public_id)

    run = run_reconciliation(trigger="cli")

    payment = reload(payment.id)
    assert payment.status == "INITIATED"
    assert payment.psp_session_id == made["id"]
    assert [s["id"] for s in checkout_sessions(emulator, payment.public_id)] == [made["id"]]
    assert entry_for(run, payment.public_id)["action"] == "registered"
    assert history(payment.id)[-1][:3] == ("CREATED", "INITIATED", "recon")


def test_dry_run_reports_everything_and_changes_nothing(
    recon, emulator, new_payment, stripe_client
):
    paid = new_payment()
    pay_session(emulator, paid.psp_session_id)
    stale = new_payment()
    set_expired(stale.id)
    emulator.control(
        "POST", "faults", {"kind": "lose_response", "path": "/v1/checkout/sessions", "count": 1}
    )
    created = new_payment(expect_error=True)
    trio = (paid, stale, created)
    before = {p.id: (p.status, p.status_version, len(history(p.id))) for p in trio}
    sessions_before = {
        s.id: s.status for s in stripe_client.v1.checkout.sessions.list({"limit": 100}).data
    }

    run = run_reconciliation(trigger="cli", dry_run=True)

    assert run.dry_run and run.status == "succeeded"
    after = {
        p.id: (reload(p.id).status, reload(p.id).status_version, len(history(p.id)))
        for p in (paid, stale, created)
    }
    assert after == before
    sessions_after = {
        s.id: s.status for s in stripe_client.v1.checkout.sessions.list({"limit": 100}).data
    }
    assert sessions_after == sessions_before  # nothing expired, nothing created
    assert db.session.scalar(db.select(db.func.count()).select_from(PspEvent)) == 0
    finals = db.select(db.func.count()).select_from(Notification).where(FINAL_NEWS)
    assert db.session.scalar(finals) == 0
    planned = {d["payment"]: (d["to"], d["action"]) for d in run.details if d.get("payment")}
    assert planned[paid.public_id] == ("SUCCESS", "would_apply_event")
    assert planned[stale.public_id] == ("FAILED", "would_expire")
    assert planned[created.public_id] == ("INITIATED", "would_register")
    assert run.corrected == 3

    real = run_reconciliation(trigger="cli")
    assert real.corrected == 3
    assert [reload(p.id).status for p in (paid, stale, created)] == [
        "SUCCESS",
        "FAILED",
        "INITIATED",
    ]


def test_one_payment_on_demand(recon, emulator, new_payment):
    payment = new_payment()
    pay_session(emulator, payment.psp_session_id)

    result = reconcile_payment(payment.id, trigger="dashboard")

    assert result["changed"] is True
    assert (result["from"], result["to"], result["status"]) == ("INITIATED", "SUCCESS", "SUCCESS")
    assert result["action"] == "applied"
    # Asked again: nothing more to do.
    again = reconcile_payment(payment.id, trigger="dashboard")
    assert (again["changed"], again["action"], again["status"]) == (False, "unchanged", "SUCCESS")


def test_a_failed_payment_paid_at_the_psp_becomes_one_conflict_never_a_success(
    recon, emulator, new_payment
):
    from app.models import PaymentStatus, StatusSource
    from app.payments.state import lock_payment, transition

    payment = new_payment()
    # PayBridge failed it (say the expire call never reached Stripe), then the shopper paid.
    locked = lock_payment(payment.id)
    transition(locked, PaymentStatus.FAILED, source=StatusSource.API, failure_code="expired")
    db.session.commit()
    pay_session(emulator, payment.psp_session_id)

    run_reconciliation(trigger="cli")
    run_reconciliation(trigger="cli")

    assert reload(payment.id).status == "FAILED"
    conflicts = db.session.execute(db.select(PaymentConflict)).scalars().all()
    assert [(c.payment_id, c.kind) for c in conflicts] == [(payment.id, "paid_after_failed")]


def test_the_open_session_of_a_failed_payment_is_closed_so_it_cannot_be_paid(
    recon, emulator, new_payment, stripe_client
):
    from app.models import PaymentStatus, StatusSource
    from app.payments.state import lock_payment, transition

    payment = new_payment()
    locked = lock_payment(payment.id)
    transition(locked, PaymentStatus.FAILED, source=StatusSource.API, failure_code="expired")
    db.session.commit()

    run = run_reconciliation(trigger="cli")

    session = stripe_client.v1.checkout.sessions.retrieve(payment.psp_session_id)
    assert session.status == "expired"
    assert entry_for(run, payment.public_id)["action"] == "expired_session"
    assert reload(payment.id).status == "FAILED"


def test_a_psp_session_without_a_payment_is_reported(recon, emulator, stripe_client):
    ghost = stripe_client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": "eur",
                        "unit_amount": 500,
                        "product_data": {"name": "x"},
                    },
                    "quantity": 1,
                }
            ],
            "success_url": "https://x.example/ok",
            "cancel_url": "https://x.example/no",
            "client_reference_id": "pay_doesnotexist",
        }
    )
    emulator.control("POST", f"checkout/sessions/{ghost.id}/pay", {"card": "4242424242424242"})

    run = run_reconciliation(trigger="cli")

    [entry] = [d for d in run.details if d.get("action") == "unknown_session"]
    assert entry["session"] == ghost.id and entry["payment"] == "pay_doesnotexist"
    assert summarize(run.details)["unknown_sessions"] == 1
    assert run.status == "succeeded"
