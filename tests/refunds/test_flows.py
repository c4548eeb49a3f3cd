"""Refunds end to end: concurrency, idempotency, PSP failures, webhooks, reconciliation and the
signed notification the client app receives."""

from __future__ import annotations

from standardwebhooks import Webhook

from app.extensions import db
from app.models import Notification, Payment, Refund
from app.reconciliation.service import run_reconciliation
from tests.support.api import auth_headers, post_refund
from tests.support.concurrency import at_once
from tests.support.factories import FINAL_NEWS
from tests.support.psp import stripe_get, stripe_post
from tests.support.rows import get_row, get_rows
from tests.support.waiting import wait_until


def psp_refunds(emulator, payment_intent_id: str) -> list[dict]:
    """The refunds the emulator (Stripe) holds for a payment intent."""
    return stripe_get(emulator, "/v1/refunds", payment_intent=payment_intent_id, limit=100)["data"]


def in_parallel(app, calls):
    """Run each call with a test client of its own, all released at once."""
    return at_once([lambda call=call: call(app.test_client()) for call in calls])


def refund_status_is(app, public_id: str, status: str):
    return lambda: get_row(app, Refund, public_id=public_id).status == status


def notification_types(app, payment_public_id: str) -> list[str]:
    """The event types of the payment's notifications (of the types a notify_url received),
    oldest first."""
    notes = get_rows(
        app, Notification, Notification.payment.has(public_id=payment_public_id), FINAL_NEWS
    )
    return [n.event_type for n in notes]


# -- never more than was paid ------------------------------------------------------------------


def test_concurrent_refunds_never_exceed_the_amount_paid(app, make_merchant, paid_payment, emu):
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id, amount=5000).public_id

    two = in_parallel(app, [lambda c: post_refund(c, key, pay_id, {"amount": 3000})] * 2)

    codes = sorted(r.status_code for r in two)
    assert codes == [201, 422], [r.get_json() for r in two]
    refused = next(r for r in two if r.status_code == 422).get_json()["error"]
    assert refused["code"] == "REFUND_AMOUNT_EXCEEDS_REMAINING"
    assert refused["details"]["remaining"] == 2000

    # Five more at once for 1000 each: exactly two fit in what remains.
    five = in_parallel(app, [lambda c: post_refund(c, key, pay_id, {"amount": 1000})] * 5)
    assert sorted(r.status_code for r in five) == [201, 201, 422, 422, 422]

    payment = get_row(app, Payment, public_id=pay_id)
    assert payment.refunded_amount == 5000 and payment.status == "SUCCESS"
    at_psp = psp_refunds(emu, payment.psp_payment_intent_id)
    assert sorted(r["amount"] for r in at_psp) == [1000, 1000, 3000]


# -- exactly once ----------------------------------------------------------------------------


def test_same_key_same_body_is_the_same_refund_and_another_body_is_refused(
    app, client, make_merchant, paid_payment, emu
):
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id, amount=5000).public_id

    first = post_refund(client, key, pay_id, {"amount": 700}, idem="refund-1")
    again = post_refund(client, key, pay_id, {"amount": 700}, idem="refund-1")
    other = post_refund(client, key, pay_id, {"amount": 800}, idem="refund-1")

    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert other.status_code == 422
    assert other.get_json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    # The same key on another route (creating a payment) is another request too.
    create = client.post(
        "/api/v1/payments",
        json={
            "merchant_reference": "x-1",
            "amount": 100,
            "currency": "EUR",
            "success_url": "https://shop.example/ok",
            "cancel_url": "https://shop.example/no",
        },
        headers=auth_headers(key, "refund-1"),
    )
    assert create.status_code == 422

    payment = get_row(app, Payment, public_id=pay_id)
    assert payment.refunded_amount == 700
    assert len(psp_refunds(emu, payment.psp_payment_intent_id)) == 1


def test_concurrent_requests_with_one_key_make_one_refund(app, make_merchant, paid_payment, emu):
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id, amount=5000).public_id

    answers = in_parallel(
        app, [lambda c: post_refund(c, key, pay_id, {"amount": 1500}, idem="same-key")] * 4
    )

    assert all(r.status_code == 201 for r in answers), [r.get_json() for r in answers]
    assert len({r.get_json()["id"] for r in answers}) == 1
    payment = get_row(app, Payment, public_id=pay_id)
    assert payment.refunded_amount == 1500
    assert len(psp_refunds(emu, payment.psp_payment_intent_id)) == 1


# -- the PSP unreachable, or its answer lost ---------------------------------------------------


def test_psp_down_keeps_the_refund_pending_and_reserved_until_a_retry_submits_it(
    app, client, make_merchant, paid_payment, emu
):
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id, amount=5000).public_id
    emu.control("POST", "faults", {"kind": "http_500", "count": 1, "path": "/v1/refunds"})

    accepted = post_refund(client, key, pay_id, {"amount": 4000}, idem="r-down")

    assert accepted.status_code == 202, accepted.get_json()
    body = accepted.get_json()
    assert body["status"] == "pending" and body["psp_refund_id"] is None
    # Reserved: what remains is 1000 although nothing is refunded yet.
    assert get_row(app, Payment, public_id=pay_id).refunded_amount == 0
    blocked = post_refund(client, key, pay_id, {"amount": 1001})
    assert blocked.get_json()["error"]["details"]["remaining"] == 1000

    retried = post_refund(client, key, pay_id, {"amount": 4000}, idem="r-down")

    assert retried.status_code == 201, retried.get_json()
    assert retried.get_json()["id"] == body["id"]
    assert retried.get_json()["status"] == "succeeded"
    payment = get_row(app, Payment, public_id=pay_id)
    assert payment.refunded_amount == 4000
    assert len(psp_refunds(emu, payment.psp_payment_intent_id)) == 1
    stored = get_row(app, Refund, public_id=body["id"])
    assert stored.psp_attempts == 2 and stored.last_psp_error is None


def test_a_lost_psp_answer_is_finished_by_reconciliation_with_the_same_psp_key(
    app, client, make_merchant, paid_payment, emu
):
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id, amount=5000).public_id
    # The PSP makes the refund but its answer never arrives.
    emu.control("POST", "faults", {"kind": "lose_response", "count": 1, "path": "/v1/refunds"})

    accepted = post_refund(client, key, pay_id, {"amount": 2500})

    assert accepted.status_code == 202
    refund_id = accepted.get_json()["id"]
    pi = get_row(app, Payment, public_id=pay_id).psp_payment_intent_id
    assert len(psp_refunds(emu, pi)) == 1  # made at the PSP, unknown to PayBridge

    app.config["RECON_STALE_AFTER_SECONDS"], saved = 0, app.config["RECON_STALE_AFTER_SECONDS"]
    try:
        with app.app_context():
            run = run_reconciliation(trigger="cli")
            # Finished either from the PSP's own refund event (the events catch-up finds the
            # refund.created the lost answer hid) or by submitting again with the same key.
            details = [
                d
                for d in run.details
                if d.get("refund") == refund_id or refund_id in (d.get("why") or "")
            ]
    finally:
        app.config["RECON_STALE_AFTER_SECONDS"] = saved

    assert details and details[0]["action"] in ("refund_submitted", "event"), run.details
    stored = get_row(app, Refund, public_id=refund_id)
    assert stored.status == "succeeded" and stored.psp_refund_id
    assert get_row(app, Payment, public_id=pay_id).refunded_amount == 2500
    assert len(psp_refunds(emu, pi)) == 1  # the same key: the PSP answered with the same one
    assert notification_types(app, pay_id)[-1] == "refund.succeeded"


# -- refused or failed at the PSP ---------------------------------------------------------------


def test_refund_failing_at_the_psp_is_failed_released_and_notified_signed(
    app, client, make_merchant, paid_payment, stripe_delivers, receiver, worker
):
    merchant, key = make_merchant(notify_url=receiver.url)
    pay_id = paid_payment(merchant.id, amount=5000).public_id
    stripe_delivers.control(
        "POST",
        "faults",
        {"kind": "refund_fail", "count": 1, "failure_reason": "expired_or_canceled_card"},
    )

    created = post_refund(client, key, pay_id, {"amount": 5000})

    assert created.status_code == 201 and created.get_json()["status"] == "pending"
    refund_id = created.get_json()["id"]
    # The PSP fails it a moment later and tells PayBridge by webhook.
    wait_until(refund_status_is(app, refund_id, "failed"), timeout=15, what="refund.failed webhook")
    stored = get_row(app, Refund, public_id=refund_id)
    assert stored.failure_reason == "expired_or_canceled_card"
    payment = get_row(app, Payment, public_id=pay_id)
    assert payment.refunded_amount == 0 and payment.status == "SUCCESS"

    # The amount is released: a new refund of everything goes through.
    again = post_refund(client, key, pay_id)
    assert again.status_code == 201 and again.get_json()["amount"] == 5000

    worker.run_until(lambda: len(receiver.requests) >= 3, what="notifications delivered")
    bodies = [Webhook(merchant.signing_secret).verify(r.body, r.headers) for r in receiver.requests]
    types = [b["type"] for b in bodies]
    assert types[0] == "payment.succeeded"
    failed = next(b for b in bodies if b["type"] == "refund.failed")
    assert failed["data"]["id"] == refund_id and failed["data"]["status"] == "failed"
    assert failed["data"]["failure_reason"] == "expired_or_canceled_card"
    assert failed["data"]["payment"]["id"] == pay_id
    assert failed["data"]["payment"]["refunded_amount"] == 0
    succeeded = next(b for b in bodies if b["type"] == "refund.succeeded")
    assert succeeded["data"]["id"] == again.get_json()["id"]
    assert succeeded["data"]["payment"]["refunded_amount"] == 5000
    assert types.index("refund.failed") < types.index("refund.succeeded")  # in order


def test_refund_rejected_by_the_psp_answers_its_code_and_fails_the_refund(
    app, client, make_merchant, paid_payment, emu
):
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id, amount=5000).public_id
    pi = get_row(app, Payment, public_id=pay_id).psp_payment_intent_id
    # Someone refunded most of it directly at the PSP, behind PayBridge's back.
    direct = stripe_post(emu, "/v1/refunds", {"payment_intent": pi, "amount": 4500})
    assert direct.status_code == 200

    rejected = post_refund(client, key, pay_id, {"amount": 1000}, idem="too-much-at-psp")

    assert rejected.status_code == 422
    error = rejected.get_json()["error"]
    assert error["code"] == "REFUND_REJECTED"
    assert error["details"]["psp_code"] == "amount_too_large"
    assert error["details"]["status"] == "failed"
    stored = get_row(app, Refund, public_id=error["details"]["refund_id"])
    assert stored.status == "failed" and stored.failure_reason == "amount_too_large"
    assert get_row(app, Payment, public_id=pay_id).refunded_amount == 0
    # Replayed with the same key: the same answer, not a second attempt.
    replay = post_refund(client, key, pay_id, {"amount": 1000}, idem="too-much-at-psp")
    assert replay.status_code == 422 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json()["error"]["details"]["refund_id"] == stored.public_id
    assert notification_types(app, pay_id) == [
        "payment.succeeded",
        "refund.failed",
    ]


# -- confirmed later: by webhook, or by reconciliation when the webhook is lost -----------------


def test_pending_refund_confirmed_by_its_webhook(
    app, client, make_merchant, paid_payment, stripe_delivers
):
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id, amount=5000).public_id
    stripe_delivers.control("POST", "faults", {"kind": "refund_pending", "count": 1})

    created = post_refund(client, key, pay_id, {"amount": 1234})

    body = created.get_json()
    assert created.status_code == 201 and body["status"] == "pending" and body["psp_refund_id"]
    assert get_row(app, Payment, public_id=pay_id).refunded_amount == 0
    stripe_delivers.control("POST", f"refunds/{body['psp_refund_id']}/succeed")
    wait_until(
        refund_status_is(app, body["id"], "succeeded"), timeout=15, what="refund.updated webhook"
    )
    assert get_row(app, Payment, public_id=pay_id).refunded_amount == 1234
    with app.app_context():
        from app.models import PspEvent

        events = db.session.scalars(
            db.select(PspEvent).where(PspEvent.event_type.like("%refund%"))
        ).all()
        # refund.updated and charge.refund.updated both report it: whichever came first
        # applied it, the other one found it done.
        applied = [e.event_type for e in events if e.outcome == "applied"]
        assert applied in (["refund.updated"], ["charge.refund.updated"]), applied
        assert all(e.payment_id is not None for e in events)
    assert notification_types(app, pay_id)[-1] == "refund.succeeded"


def test_refund_confirmed_by_reconciliation_when_its_webhook_is_lost(
    app, client, make_merchant, paid_payment, emu
):
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id, amount=5000).public_id
    emu.control("POST", "faults", {"kind": "refund_pending", "count": 1})
    # No webhook endpoint: whatever the PSP sends about it is lost.
    created = post_refund(client, key, pay_id, {"amount": 2000})
    body = created.get_json()
    assert body["status"] == "pending"
    emu.control("POST", f"refunds/{body['psp_refund_id']}/succeed")
    # The events catch-up would find refund.updated; with the Events API down, the pass over
    # pending refunds must find the outcome on its own.
    emu.control("POST", "faults", {"kind": "http_500", "count": 1, "path": "/v1/events"})

    app.config["RECON_STALE_AFTER_SECONDS"], saved = 0, app.config["RECON_STALE_AFTER_SECONDS"]
    try:
        with app.app_context():
            run = run_reconciliation(trigger="cli")
            entry = next(d for d in run.details if d.get("refund") == body["id"])
            corrected = run.corrected
    finally:
        app.config["RECON_STALE_AFTER_SECONDS"] = saved

    assert entry["action"] == "refund_corrected"
    assert (entry["from"], entry["to"]) == ("pending", "succeeded")
    assert corrected >= 1
    assert get_row(app, Refund, public_id=body["id"]).status == "succeeded"
    assert get_row(app, Payment, public_id=pay_id).refunded_amount == 2000
    assert notification_types(app, pay_id)[-1] == "refund.succeeded"
    # A second run finds nothing pending and changes nothing.
    with app.app_context():
        again = run_reconciliation(trigger="cli")
        assert not [d for d in again.details if d.get("refund") == body["id"]]
        assert db.session.scalar(db.select(db.func.count(Refund.id))) == 1


def test_a_lost_psp_answer_is_learned_from_the_refund_webhook(
    app, client, make_merchant, paid_payment, stripe_delivers
):
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id, amount=5000).public_id
    stripe_delivers.control(
        "POST", "faults", {"kind": "lose_response", "count": 1, "path": "/v1/refunds"}
    )

    accepted = post_refund(client, key, pay_id, {"amount": 900})

    assert accepted.status_code == 202
    refund_id = accepted.get_json()["id"]
    # The PSP's events carry PayBridge's refund id in the metadata: that maps them.
    wait_until(refund_status_is(app, refund_id, "succeeded"), timeout=15, what="refund webhook")
    stored = get_row(app, Refund, public_id=refund_id)
    pi = get_row(app, Payment, public_id=pay_id).psp_payment_intent_id
    assert [r["id"] for r in psp_refunds(stripe_delivers, pi)] == [stored.psp_refund_id]
    assert get_row(app, Payment, public_id=pay_id).refunded_amount == 900


def test_reconciling_one_payment_on_demand_confirms_its_pending_refund(
    app, client, make_merchant, paid_payment, emu
):
    from app.reconciliation.service import reconcile_payment

    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id, amount=5000).public_id
    emu.control("POST", "faults", {"kind": "refund_pending", "count": 1})
    body = post_refund(client, key, pay_id, {"amount": 300}).get_json()
    emu.control("POST", f"refunds/{body['psp_refund_id']}/succeed")

    with app.app_context():
        payment_id = get_row(app, Payment, public_id=pay_id).id
        result = reconcile_payment(payment_id, trigger="dashboard")

    [entry] = result["refunds"]
    assert (entry["refund"], entry["from"], entry["to"]) == (body["id"], "pending", "succeeded")
    assert get_row(app, Payment, public_id=pay_id).refunded_amount == 300


def test_a_refund_the_psp_reverses_later_fails_and_gives_the_amount_back(
    app, client, make_merchant, paid_payment, stripe_delivers
):
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id, amount=5000).public_id
    body = post_refund(client, key, pay_id, {"amount": 2000}).get_json()
    assert body["status"] == "succeeded"
    assert get_row(app, Payment, public_id=pay_id).refunded_amount == 2000

    stripe_delivers.control(
        "POST", f"refunds/{body['psp_refund_id']}/fail", {"failure_reason": "lost_or_stolen_card"}
    )

    wait_until(
        refund_status_is(app, body["id"], "failed"), timeout=15, what="refund.failed webhook"
    )
    assert get_row(app, Refund, public_id=body["id"]).failure_reason == "lost_or_stolen_card"
    assert get_row(app, Payment, public_id=pay_id).refunded_amount == 0
    assert notification_types(app, pay_id) == [
        "payment.succeeded",
        "refund.succeeded",
        "refund.failed",
    ]
    # The released amount can be refunded again.
    assert post_refund(client, key, pay_id).get_json()["amount"] == 5000


def test_refund_metrics_count_requests_and_outcomes(client, make_merchant, paid_payment):
    """Each refund request and outcome moves its counter by exactly what happened (the counters
    are process-wide: other tests moved them before, so the test compares before and after)."""
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id, amount=5000).public_id
    counters = (
        'paybridge_refunds_total{outcome="requested"}',
        'paybridge_refunds_total{outcome="succeeded"}',
        'paybridge_refunds_total{outcome="refused"}',
        'paybridge_refunded_minor_units_total{currency="EUR"}',
    )

    def values() -> list[float]:
        lines = client.get("/metrics").get_data(as_text=True).splitlines()
        found = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in lines
            if line.startswith("paybridge_")
        }
        return [found.get(name, 0.0) for name in counters]

    before = values()
    assert post_refund(client, key, pay_id, {"amount": 100}).status_code == 201
    assert post_refund(client, key, pay_id, {"amount": 99999}).status_code == 422
    after = values()

    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 100]
