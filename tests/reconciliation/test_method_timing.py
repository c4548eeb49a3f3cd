"""Per-method timing of the stale pass: a PENDING card payment is late after minutes, a PENDING
SEPA debit (settling for days) only after RECON_DELAYED_STALE_AFTER_SECONDS, whatever its
completed session's expiry says."""

from __future__ import annotations

from datetime import timedelta

from app.extensions import db
from app.models import utcnow
from app.psp.factory import get_provider
from app.reconciliation.reconciler import Reconciler
from app.reconciliation.service import build_gate
from tests.reconciliation.conftest import reload

STALE_AFTER = timedelta(minutes=10)


def _pending(payment, method_type: str | None, *, idle: timedelta, expired: bool = True) -> int:
    row = reload(payment.id)
    row.status = "PENDING"
    row.method_type = method_type
    row.updated_at = utcnow() - idle
    row.psp_expires_at = utcnow() - timedelta(minutes=1) if expired else utcnow() + idle
    db.session.commit()
    return row.id


def test_a_sepa_debit_waits_days_a_card_minutes(recon, new_payment):
    card = _pending(new_payment(), "card", idle=timedelta(minutes=30))
    unknown = _pending(new_payment(), None, idle=timedelta(minutes=30))
    sepa_settling = _pending(new_payment(), "sepa_debit", idle=timedelta(hours=5))
    sepa_late = _pending(new_payment(), "sepa_debit", idle=timedelta(days=2))
    card_fresh = _pending(new_payment(), "card", idle=timedelta(minutes=1), expired=False)
    reconciler = Reconciler(
        provider=get_provider(),
        gate=build_gate(recon.config),
        dry_run=True,
        delayed_stale_after=timedelta(days=1),
    )
    stale = set(reconciler.stale_payment_ids(STALE_AFTER))
    mine = {card, unknown, sepa_settling, sepa_late, card_fresh}
    assert stale & mine == {card, unknown, sepa_late}
    # The Python rule (a listed row) says the same as the query.
    now = utcnow()
    for payment_id in mine:
        assert reconciler._is_stale(reload(payment_id), now, STALE_AFTER) == (payment_id in stale)
