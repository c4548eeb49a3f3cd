"""Reconciliation in both modes: each mode's payments are checked with its own Stripe key, and a
mode without API keys is not listed at all."""

from __future__ import annotations

from app.extensions import db
from app.models import PspEvent
from app.reconciliation.service import modes_in_use, run_reconciliation
from tests.reconciliation.conftest import reload
from tests.support.factories import make_api_key, register_payment
from tests.support.psp import pay_session


def test_a_mode_without_api_keys_is_not_reconciled(recon, merchant):
    assert modes_in_use() == [False]  # the merchant has a test key only

    make_api_key(recon, merchant.id, livemode=True)

    assert modes_in_use() == [False, True]


def test_a_run_finishes_each_modes_payments_from_that_modes_missed_events(
    recon, live_emulator, merchant
):
    make_api_key(recon, merchant.id, livemode=True)
    test_payment = register_payment(merchant.id)
    live_payment = register_payment(merchant.id, livemode=True)
    # No webhook endpoint: both shoppers pay, and neither event reaches PayBridge.
    for payment in (test_payment, live_payment):
        pay_session(live_emulator, payment.psp_session_id)

    run = run_reconciliation(trigger="cli")

    assert (run.status, run.errors, run.corrected) == ("succeeded", 0, 2)
    for payment, livemode in ((test_payment, False), (live_payment, True)):
        assert reload(payment.id).status == "SUCCESS"
        event = db.session.execute(
            db.select(PspEvent).where(
                PspEvent.payment_id == payment.id,
                PspEvent.event_type == "checkout.session.completed",
            )
        ).scalar_one()
        assert (event.received_via, event.outcome, event.livemode) == ("recon", "applied", livemode)
