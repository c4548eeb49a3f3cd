"""process_event and apply_session on MariaDB, fed PSP facts built in the test."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client import REGISTRY

from app.extensions import db
from app.models import Notification, PaymentConflict, PaymentStatus, PspEvent, StatusSource
from app.payments.psp_facts import apply_session
from app.psp_events.intake import process_event
from tests.support.concurrency import at_once
from tests.support.factories import FINAL_NEWS, PaymentRef, new_session_id
from tests.webhooks.helpers import counts, event_for, load_payment, session_for

COMPLETED = "checkout.session.completed"
ASYNC_OK = "checkout.session.async_payment_succeeded"
ASYNC_FAILED = "checkout.session.async_payment_failed"
EXPIRED = "checkout.session.expired"


def process(app, event, **kwargs) -> PspEvent:
    with app.app_context():
        return process_event(event, **kwargs)  # detached, with its values loaded


def metric(name: str, labels: dict) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("start", "event_type", "session_fields", "end", "failure_code"),
    [
        (PaymentStatus.INITIATED, COMPLETED, {"payment_status": "paid"}, "SUCCESS", None),
        (PaymentStatus.INITIATED, COMPLETED, {"payment_status": "unpaid"}, "PENDING", None),
        (PaymentStatus.PENDING, ASYNC_OK, {"payment_status": "paid"}, "SUCCESS", None),
        (PaymentStatus.INITIATED, ASYNC_OK, {"payment_status": "paid"}, "SUCCESS", None),
        (
            PaymentStatus.PENDING,
            ASYNC_FAILED,
            {"payment_status": "unpaid", "failure_code": "insufficient_funds"},
            "FAILED",
            "insufficient_funds",
        ),
        (
            PaymentStatus.INITIATED,
            EXPIRED,
            {"status": "expired", "payment_status": "unpaid"},
            "FAILED",
            "expired",
        ),
    ],
)
def test_each_event_type_moves_the_payment(
    app, make_payment, start, event_type, session_fields, end, failure_code
):
    payment = make_payment(start)
    session = session_for(payment, **session_fields)
    event = event_for(event_type, session)

    row = process(app, event)

    assert row.outcome == PspEvent.OUTCOME_APPLIED
    assert row.payment_id == payment.id
    stored = load_payment(app, payment.id)
    assert stored.status == end
    assert stored.failure_code == failure_code
    assert stored.psp_payment_intent_id == session.payment_intent_id
    last = stored.history[-1]
    assert (last.from_status, last.to_status) == (start.value, end)
    assert last.source == "webhook"
    assert last.psp_event_id == event.id
    assert counts(app, payment.id)["notifications"] == (1 if end in ("SUCCESS", "FAILED") else 0)


def test_event_row_keeps_payload_and_is_stored_once(app, make_payment):
    payment = make_payment()
    event = event_for(COMPLETED, session_for(payment))

    first = process(app, event)
    again = process(app, event)

    assert again.id == first.id
    assert again.outcome == PspEvent.OUTCOME_APPLIED
    assert first.payload["id"] == event.id and first.psp_session_id == payment.session_id
    stored = load_payment(app, payment.id)
    assert [h.to_status for h in stored.history] == ["CREATED", "INITIATED", "SUCCESS"]
    assert counts(app) == {"events": 1, "notifications": 1, "conflicts": 0}


def test_ten_concurrent_copies_apply_once(app, make_payment):
    payment = make_payment()
    event = event_for(COMPLETED, session_for(payment))
    rows = at_once([lambda: process(app, event)] * 10, timeout=30)

    assert len({r.id for r in rows}) == 1 and len(rows) == 10
    stored = load_payment(app, payment.id)
    assert stored.status == "SUCCESS" and stored.status_version == 3
    assert counts(app) == {"events": 1, "notifications": 1, "conflicts": 0}


def test_out_of_order_completed_unpaid_after_async_success_is_ignored(app, make_payment):
    payment = make_payment()
    succeeded = event_for(ASYNC_OK, session_for(payment, payment_status="paid"))
    late = event_for(COMPLETED, session_for(payment, payment_status="unpaid"))

    assert process(app, succeeded).outcome == PspEvent.OUTCOME_APPLIED
    row = process(app, late)

    assert row.outcome == PspEvent.OUTCOME_IGNORED
    assert "backwards" in row.detail
    stored = load_payment(app, payment.id)
    assert stored.status == "SUCCESS"
    assert counts(app, payment.id) == {"events": 2, "notifications": 1, "conflicts": 0}


def test_a_repeated_fact_with_a_new_event_id_is_ignored(app, make_payment):
    payment = make_payment()
    process(app, event_for(COMPLETED, session_for(payment)))
    row = process(app, event_for(ASYNC_OK, session_for(payment)))
    assert row.outcome == PspEvent.OUTCOME_IGNORED
    assert load_payment(app, payment.id).status_version == 3


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"amount_total": 1}, "amount 1 is not 1999"),
        ({"currency": "USD"}, "currency USD is not EUR"),
        ({"amount_total": None}, "amount None"),
        ({"client_reference_id": "pay_someoneelse"}, "client_reference_id"),
        (
            {"metadata": {"paybridge_payment_id": "pay_other", "merchant_reference": "x"}},
            "metadata.paybridge_payment_id",
        ),
    ],
)
def test_mismatched_session_is_flagged_and_never_applied(app, make_payment, fields, why):
    payment = make_payment()
    before = metric("paybridge_payment_conflicts_total", {"kind": "mismatch"})

    row = process(app, event_for(COMPLETED, session_for(payment, **fields)))

    assert row.outcome == PspEvent.OUTCOME_MISMATCH
    assert why in row.detail
    assert load_payment(app, payment.id).status == "INITIATED"
    with app.app_context():
        conflict = db.session.execute(db.select(PaymentConflict)).scalar_one()
        assert conflict.kind == PaymentConflict.KIND_MISMATCH
        assert conflict.payment_id == payment.id and conflict.psp_event_id == row.event_id
    assert metric("paybridge_payment_conflicts_total", {"kind": "mismatch"}) == before + 1
    assert counts(app, payment.id)["notifications"] == 0


def test_lower_case_psp_currency_matches(app, make_payment):
    payment = make_payment(currency="EUR")
    row = process(app, event_for(COMPLETED, session_for(payment, currency="eur")))
    assert row.outcome == PspEvent.OUTCOME_APPLIED


def test_unknown_session_is_stored_and_flagged(app, make_payment):
    make_payment()
    session = session_for(
        PaymentRef(
            public_id="pay_unknown000",
            session_id=new_session_id(),
            reference="nobody",
            amount=500,
            currency="EUR",
        )
    )
    row = process(app, event_for(COMPLETED, session))
    assert row.outcome == PspEvent.OUTCOME_UNKNOWN_SESSION
    assert row.payment_id is None and row.psp_session_id == session.id
    assert counts(app) == {"events": 1, "notifications": 0, "conflicts": 0}


def test_paid_after_failed_is_a_counted_conflict(app, make_payment):
    payment = make_payment(PaymentStatus.FAILED)
    before = metric("paybridge_payment_conflicts_total", {"kind": "paid_after_failed"})

    row = process(app, event_for(COMPLETED, session_for(payment)))

    assert row.outcome == PspEvent.OUTCOME_CONFLICT
    stored = load_payment(app, payment.id)
    assert stored.status == "FAILED" and stored.status_version == 3
    with app.app_context():
        conflict = db.session.execute(db.select(PaymentConflict)).scalar_one()
        assert conflict.kind == "paid_after_failed"
        assert conflict.psp_session_id == payment.session_id
        assert conflict.resolved_at is None
    assert metric("paybridge_payment_conflicts_total", {"kind": "paid_after_failed"}) == before + 1
    # The payment's FAILED notification came from the fixture; none for the late success.
    assert counts(app, payment.id)["notifications"] == 1


def test_created_payment_is_matched_through_its_own_id_and_registered(app, make_payment):
    payment = make_payment(PaymentStatus.CREATED)
    session = session_for(payment, url=None)
    event = event_for(COMPLETED, session)

    row = process(app, event)

    assert row.outcome == PspEvent.OUTCOME_APPLIED
    stored = load_payment(app, payment.id)
    assert stored.psp_session_id == session.id
    assert stored.status == "SUCCESS"
    steps = [(h.from_status, h.to_status, h.psp_event_id) for h in stored.history]
    assert steps == [
        (None, "CREATED", None),
        ("CREATED", "INITIATED", event.id),
        ("INITIATED", "SUCCESS", event.id),
    ]


def test_expired_created_payment_goes_through_initiated(app, make_payment):
    payment = make_payment(PaymentStatus.CREATED)
    session = session_for(payment, status="expired", payment_status="unpaid")
    process(app, event_for(EXPIRED, session))
    stored = load_payment(app, payment.id)
    assert [h.to_status for h in stored.history] == ["CREATED", "INITIATED", "FAILED"]
    assert stored.failure_code == "expired"


def test_other_event_types_are_stored_and_acknowledged(app, make_payment):
    payment = make_payment()
    row = process(app, event_for("payment_intent.succeeded", None))
    assert row.outcome == PspEvent.OUTCOME_UNHANDLED
    assert load_payment(app, payment.id).status == "INITIATED"
    assert counts(app)["events"] == 1


def test_recon_catch_up_is_recorded_with_its_source(app, make_payment):
    payment = make_payment()
    row = process(app, event_for(COMPLETED, session_for(payment)), received_via="recon")
    assert row.received_via == "recon"
    assert load_payment(app, payment.id).history[-1].source == "recon"


def test_webhook_events_metric_counts_outcomes(app, make_payment):
    payment = make_payment()
    labels = {"type": COMPLETED, "outcome": "applied"}
    before = metric("paybridge_webhook_events_total", labels)
    dup_labels = {"type": COMPLETED, "outcome": "duplicate"}
    dup_before = metric("paybridge_webhook_events_total", dup_labels)
    event = event_for(COMPLETED, session_for(payment))
    process(app, event)
    process(app, event)
    assert metric("paybridge_webhook_events_total", labels) == before + 1
    assert metric("paybridge_webhook_events_total", dup_labels) == dup_before + 1


# apply_session: the return page and reconciliation


def apply(app, payment_id, session, source=StatusSource.RETURN):
    with app.app_context():
        return apply_session(payment_id, session, source=source)


def test_apply_session_applies_paid_and_stores_the_intent(app, make_payment):
    payment = make_payment()
    session = session_for(payment)
    assert apply(app, payment.id, session) == "applied"
    stored = load_payment(app, payment.id)
    assert stored.status == "SUCCESS"
    assert stored.psp_payment_intent_id == session.payment_intent_id
    assert stored.history[-1].source == "return" and stored.history[-1].psp_event_id is None
    assert apply(app, payment.id, session) == "unchanged"
    assert counts(app, payment.id)["notifications"] == 1


def test_apply_session_open_session_changes_nothing(app, make_payment):
    payment = make_payment()
    session = session_for(payment, status="open", payment_status="unpaid")
    assert apply(app, payment.id, session) == "unchanged"
    assert load_payment(app, payment.id).status_version == 2


def test_apply_session_open_session_confirms_a_created_payment(app, make_payment):
    payment = make_payment(PaymentStatus.CREATED)
    session = session_for(payment, status="open", payment_status="unpaid", url="https://c/pay")
    assert apply(app, payment.id, session, StatusSource.RECON) == "applied"
    stored = load_payment(app, payment.id)
    assert stored.status == "INITIATED" and stored.psp_session_id == session.id
    assert stored.checkout_url == "https://c/pay"


def test_apply_session_failed_intent_fails_the_payment(app, make_payment):
    payment = make_payment(PaymentStatus.PENDING)
    session = session_for(
        payment, payment_status="unpaid", payment_intent_status="requires_payment_method"
    )
    assert apply(app, payment.id, session, StatusSource.RECON) == "applied"
    stored = load_payment(app, payment.id)
    assert stored.status == "FAILED" and stored.failure_code == "payment_failed"


def test_apply_session_backwards_is_ignored(app, make_payment):
    payment = make_payment(PaymentStatus.SUCCESS)
    session = session_for(payment, payment_status="unpaid")
    assert apply(app, payment.id, session, StatusSource.RECON) == "ignored"
    assert load_payment(app, payment.id).status == "SUCCESS"


def test_apply_session_conflict_is_recorded_once_however_often_seen(app, make_payment):
    payment = make_payment(PaymentStatus.FAILED)
    session = session_for(payment)
    assert apply(app, payment.id, session, StatusSource.RECON) == "conflict"
    assert apply(app, payment.id, session, StatusSource.RECON) == "conflict"
    assert counts(app, payment.id)["conflicts"] == 1


def test_apply_session_refuses_another_payments_session(app, make_payment):
    payment = make_payment()
    other = make_payment()
    session = replace(session_for(other), id=payment.session_id)
    assert apply(app, payment.id, session) == "mismatch"
    assert load_payment(app, payment.id).status == "INITIATED"


def test_notification_is_written_with_the_final_status(app, make_payment):
    payment = make_payment()
    process(app, event_for(COMPLETED, session_for(payment)))
    with app.app_context():
        note = db.session.execute(db.select(Notification).where(FINAL_NEWS)).scalar_one()
        assert note.event_type == "payment.succeeded"
        assert note.status_version == 3
        assert note.payload["data"]["status"] == "SUCCESS"


def test_return_and_webhook_racing_apply_once(app, make_payment):
    payment = make_payment()
    session = session_for(payment)
    event = event_for(COMPLETED, session)

    def webhook():
        return process(app, event).outcome

    def shopper_returns():
        return apply(app, payment.id, session)

    outcomes = at_once([webhook, shopper_returns] * 3, timeout=30)

    assert outcomes.count("applied") >= 1
    stored = load_payment(app, payment.id)
    assert [h.to_status for h in stored.history] == ["CREATED", "INITIATED", "SUCCESS"]
    assert counts(app, payment.id) == {"events": 1, "notifications": 1, "conflicts": 0}
