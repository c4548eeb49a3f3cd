"""refund_conflict and resolve_conflict against MariaDB and the Stripe emulator over HTTP."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from app.conflicts.service import refund_conflict, resolve_conflict
from app.errors import PayBridgeError
from app.extensions import db
from app.models import Notification, Payment, PaymentConflict, Refund
from app.psp import get_provider
from app.psp.base import RefundRequest
from app.psp_events.intake import process_event
from tests.conflicts.conftest import psp_refunds
from tests.snapshot import behind_an_older_snapshot
from tests.support.factories import PaymentRef
from tests.support.rows import count_rows, get_row
from tests.support.waiting import wait_until
from tests.webhooks.helpers import event_for, session_for


def resolved_metric(kind: str, how: str) -> float:
    labels = {"kind": kind, "how": how}
    return REGISTRY.get_sample_value("paybridge_payment_conflicts_resolved_total", labels) or 0.0


def test_refund_returns_the_whole_amount_once_and_resolves_the_conflict(
    app, merchant, paid_after_failed
):
    c = paid_after_failed(merchant.id, amount=2599)
    before_payment = get_row(app, Payment, c.payment_id)
    notifications = count_rows(app, Notification, Notification.payment_id == c.payment_id)
    metric_before = resolved_metric("paid_after_failed", "refunded")

    with app.app_context():
        done = refund_conflict(c.conflict_id, actor="ops@paybridge.example")
        resolution, resolved_at = done.resolution, done.resolved_at

    [psp_refund] = psp_refunds(app, c.payment_intent_id)
    assert (psp_refund.amount, psp_refund.status, psp_refund.currency) == (2599, "succeeded", "EUR")
    assert psp_refund.metadata["paybridge_payment_id"] == c.public_id
    assert resolved_at is not None
    assert resolution.startswith(f"refunded at the PSP: {psp_refund.id} (succeeded)")
    assert "ops@paybridge.example" in resolution and c.payment_intent_id in resolution
    # The payment stays FAILED, untouched; no PayBridge refund row, no new notification.
    after = get_row(app, Payment, c.payment_id)
    assert (after.status, after.status_version) == ("FAILED", before_payment.status_version)
    assert after.refunded_amount == before_payment.refunded_amount
    assert count_rows(app, Refund) == 0
    assert count_rows(app, Notification, Notification.payment_id == c.payment_id) == notifications
    assert resolved_metric("paid_after_failed", "refunded") == metric_before + 1

    # A second attempt is refused and refunds nothing more.
    with app.app_context(), pytest.raises(PayBridgeError) as again:
        refund_conflict(c.conflict_id, actor="ops@paybridge.example")
    assert again.value.code == "CONFLICT_ALREADY_RESOLVED"
    assert again.value.details["resolution"] == resolution
    assert len(psp_refunds(app, c.payment_intent_id)) == 1
    assert resolved_metric("paid_after_failed", "refunded") == metric_before + 1


def test_psp_unreachable_keeps_the_conflict_open_and_a_retry_refunds_once(
    app, merchant, paid_after_failed, emu
):
    c = paid_after_failed(merchant.id, amount=1200)
    # The PSP makes the refund but its answer is lost (a 500 after the work is done).
    emu.control("POST", "faults", {"kind": "lose_response", "path": "/v1/refunds", "count": 1})

    with app.app_context(), pytest.raises(PayBridgeError) as lost:
        refund_conflict(c.conflict_id, actor="ops")
    assert lost.value.code == "PSP_UNAVAILABLE"
    row = get_row(app, PaymentConflict, c.conflict_id)
    assert row.resolved_at is None
    assert row.resolution.startswith("not refunded yet: the PSP could not be reached")
    assert len(psp_refunds(app, c.payment_intent_id)) == 1  # made at the PSP all the same

    with app.app_context():
        done = refund_conflict(c.conflict_id, actor="ops")
        resolution = done.resolution
    [psp_refund] = psp_refunds(app, c.payment_intent_id)  # still exactly one
    assert psp_refund.amount == 1200
    assert resolution.startswith(f"refunded at the PSP: {psp_refund.id} (succeeded)")
    assert get_row(app, Payment, c.payment_id).status == "FAILED"


def test_psp_refusal_is_a_clear_error_and_the_conflict_stays_open(app, merchant, paid_after_failed):
    c = paid_after_failed(merchant.id, amount=900)
    # Someone refunded it in the PSP's own dashboard already: nothing remains.
    with app.app_context():
        get_provider().create_refund(
            RefundRequest(
                refund_id="by-hand",
                payment_id=c.public_id,
                payment_intent_id=c.payment_intent_id,
                idempotency_key="by-hand-" + c.public_id,
                amount=900,
                currency="EUR",
            )
        )

    with app.app_context(), pytest.raises(PayBridgeError) as refused:
        refund_conflict(c.conflict_id, actor="ops")
    assert refused.value.code == "CONFLICT_REFUND_REJECTED"
    assert refused.value.status == 422
    assert refused.value.details["psp_code"] == "charge_already_refunded"
    row = get_row(app, PaymentConflict, c.conflict_id)
    assert row.resolved_at is None
    assert "the PSP refused (charge_already_refunded)" in row.resolution
    assert len(psp_refunds(app, c.payment_intent_id)) == 1

    # Settled outside PayBridge: close it with a note.
    with app.app_context():
        done = resolve_conflict(c.conflict_id, actor="ops", note="refunded  in Stripe\nby hand")
        assert done.resolution == "resolved by ops: refunded in Stripe by hand"
        assert done.resolved_at is not None


def test_a_mismatch_conflict_is_not_refundable_but_can_be_marked_resolved(
    app, merchant, paid_after_failed
):
    c = paid_after_failed(merchant.id)
    with app.app_context():
        # The same payment, a session claiming another amount: flagged, never applied.
        other = session_for(
            PaymentRef(
                public_id=c.public_id,
                session_id=c.session_id,
                reference="x",
                amount=1,
                currency="EUR",
            )
        )
        process_event(event_for("checkout.session.completed", other))
        mismatch = db.session.scalars(
            select(PaymentConflict).where(PaymentConflict.kind == PaymentConflict.KIND_MISMATCH)
        ).one()
        mismatch_id = mismatch.id
        db.session.commit()
    before = resolved_metric("mismatch", "marked")

    with app.app_context(), pytest.raises(PayBridgeError) as not_refundable:
        refund_conflict(mismatch_id, actor="ops")
    assert not_refundable.value.code == "CONFLICT_NOT_REFUNDABLE"
    # Nothing noted, nothing asked.
    assert get_row(app, PaymentConflict, mismatch_id).resolution is None

    with app.app_context(), pytest.raises(PayBridgeError) as empty:
        resolve_conflict(mismatch_id, actor="ops", note="   ")
    assert (empty.value.code, empty.value.param) == ("VALIDATION_ERROR", "note")
    assert get_row(app, PaymentConflict, mismatch_id).resolved_at is None

    with app.app_context():
        resolve_conflict(mismatch_id, actor="ops", note="forged test event, checked at Stripe")
    row = get_row(app, PaymentConflict, mismatch_id)
    assert row.resolved_at is not None
    assert row.resolution == "resolved by ops: forged test event, checked at Stripe"
    assert resolved_metric("mismatch", "marked") == before + 1
    with app.app_context(), pytest.raises(PayBridgeError) as twice:
        resolve_conflict(mismatch_id, actor="ops", note="again")
    assert twice.value.code == "CONFLICT_ALREADY_RESOLVED"
    # The paid-after-failed conflict is untouched by all this, and no money moved.
    assert get_row(app, PaymentConflict, c.conflict_id).resolved_at is None
    assert psp_refunds(app, c.payment_intent_id) == []


def test_unknown_conflict(app):
    with app.app_context(), pytest.raises(PayBridgeError) as missing:
        refund_conflict(987654, actor="ops")
    assert missing.value.code == "CONFLICT_NOT_FOUND" and missing.value.status == 404


def test_two_refunds_at_once_make_one_refund(app, merchant, paid_after_failed, emu):
    """Two operators (or a double click on two tabs) while the PSP is slow: the same key."""
    c = paid_after_failed(merchant.id, amount=3100)
    emu.control("POST", "faults", {"kind": "hang", "path": "/v1/refunds", "seconds": 2, "count": 1})
    outcomes: list = []

    def click():
        with app.app_context():
            try:
                outcomes.append(refund_conflict(c.conflict_id, actor="ops").resolution)
            except PayBridgeError as exc:
                outcomes.append(exc.code)

    first, second = threading.Thread(target=click), threading.Thread(target=click)
    first.start()
    wait_until(
        lambda: get_row(app, PaymentConflict, c.conflict_id).resolution is not None,
        what="the first refund at the PSP",
        timeout=15,
        interval=0.02,
    )
    second.start()
    first.join(10)
    second.join(10)

    [psp_refund] = psp_refunds(app, c.payment_intent_id)
    assert psp_refund.amount == 3100
    # One of them resolved it; the other was told to try again (the PSP held the key for the
    # first) — or, on a slow machine, arrived late enough to see the same refund or the
    # resolved conflict. Never a refusal, never a second refund.
    resolved = (
        f"refunded at the PSP: {psp_refund.id} (succeeded); 3100 EUR of "
        f"{c.payment_intent_id}, by ops"
    )
    assert len(outcomes) == 2 and resolved in outcomes, outcomes
    assert set(outcomes) <= {resolved, "PSP_UNAVAILABLE", "CONFLICT_ALREADY_RESOLVED"}, outcomes
    row = get_row(app, PaymentConflict, c.conflict_id)
    assert row.resolved_at is not None and psp_refund.id in row.resolution


def test_a_webhook_and_reconciliation_reporting_one_late_payment_open_one_conflict(
    app, merchant, failed_then_paid
):
    # Reconciliation read (its snapshot) before the webhook's transaction recorded the conflict
    # and committed; it then waits for the payment's lock and reports the same session.
    from app.models import StatusSource
    from app.payments.psp_facts import apply_session

    late = failed_then_paid(merchant.id)

    def webhook() -> None:
        assert process_event(late.event).outcome == "conflict"

    outcome = behind_an_older_snapshot(
        app,
        webhook,
        lambda: apply_session(late.payment_id, late.event.session, source=StatusSource.RECON),
    )

    assert outcome == "conflict"
    assert count_rows(app, PaymentConflict, PaymentConflict.payment_id == late.payment_id) == 1
    assert get_row(app, Payment, late.payment_id).status == "FAILED"
