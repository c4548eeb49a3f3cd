"""The subscription is recorded whichever path completes its first payment: here no webhook
ever arrives, reconciliation learns the paid session, and the flush hook writes the
subscription in the same transaction as the payment's SUCCESS (its notification names it)."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import Notification, SubscriptionCharge
from app.reconciliation.service import reconcile_payment, run_reconciliation
from tests.subscriptions.conftest import payments_of, subscription_row
from tests.support.factories import FINAL_NEWS, new_reference
from tests.support.psp import pay_session
from tests.support.rows import read


def test_first_payment_learned_by_reconciliation_records_its_subscription(
    app, make_merchant, registered_payment, stripe_delivers
):
    merchant, _ = make_merchant()
    stripe_delivers.control("POST", "deliveries/pause")
    payment = registered_payment(
        merchant.id,
        merchant_reference=new_reference("plan"),
        amount=990,
        currency="USD",
        payment_type="RECC",
        interval="week",
        interval_count=2,
    )
    payment_id = payment.id
    pay_session(stripe_delivers, payment.session_id)
    assert subscription_row(app, payment_id) is None

    with app.app_context():
        result = reconcile_payment(payment_id, trigger="test")
        assert result["status"] == "SUCCESS"
        db.session.remove()
    [first] = payments_of(app, payment_id)
    sub = subscription_row(app, payment_id)
    assert sub["psp_subscription_id"] == first["psp_subscription_id"]
    assert (sub["status"], sub["amount"], sub["currency"]) == ("active", 990, "USD")
    assert (sub["interval"], sub["interval_count"]) == ("week", 2)
    assert sub["current_period_end"] is None  # the PSP's period is not known yet

    payload = read(
        app,
        lambda: db.session.execute(
            select(Notification.payload).where(Notification.payment_id == payment_id, FINAL_NEWS)
        ).scalar_one(),
    )
    assert payload["data"]["subscription_id"] == sub["public_id"]

    # The subscription pass fills in the period and links the first invoice to the payment,
    # without recording it as a renewal.
    with app.app_context():
        run = run_reconciliation(trigger="test")
        assert run.status == "succeeded", run.error_text
        db.session.remove()
    sub = subscription_row(app, payment_id)
    assert sub["current_period_end"] is not None
    assert (sub["current_period_end"] - sub["current_period_start"]).days == 14
    assert len(payments_of(app, payment_id)) == 1
    charges = read(
        app,
        lambda: [
            (c.payment_id, c.billing_reason)
            for c in db.session.execute(select(SubscriptionCharge)).scalars()
        ],
    )
    assert charges == [(payment_id, "subscription_create")]
