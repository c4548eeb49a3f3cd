"""Opening a dispute at the emulator, as a cardholder's bank does, and reading what PayBridge
recorded of it."""

from __future__ import annotations

from app.models import Dispute, Payment
from tests.support.rows import get_row, get_rows
from tests.support.waiting import wait_until


def open_dispute(app, emulator, pay_id: str, **options) -> dict:
    """The cardholder's bank disputes the paid payment: the emulator's dispute object."""
    intent = get_row(app, Payment, public_id=pay_id).psp_payment_intent_id
    return emulator.control("POST", "disputes", {"payment_intent": intent, **options})["dispute"]


def recorded_dispute(app, psp_dispute_id: str, until=lambda d: True, what="dispute recorded"):
    """PayBridge's record of the PSP's dispute, once `until(record)` holds."""

    def found():
        rows = get_rows(app, Dispute, Dispute.psp_dispute_id == psp_dispute_id)
        return rows[0] if rows and until(rows[0]) else None

    return wait_until(found, timeout=15, what=what)
