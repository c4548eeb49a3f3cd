"""Opening a dispute at the emulator, as a cardholder's bank does, and reading what PayBridge
recorded of it."""

from __future__ import annotations

from datetime import timedelta

from app.models import Dispute, Payment, utcnow
from app.psp import get_provider
from app.psp_events.intake import process_event
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


def dispute_applied(app, emulator, pay_id: str) -> str:
    """A dispute opened at the emulator and recorded by handing PayBridge the PSP's
    `charge.dispute.created` event directly (for tests where the emulator delivers no
    webhooks); its public id."""
    opened = open_dispute(app, emulator, pay_id)
    with app.app_context():
        since = utcnow() - timedelta(minutes=5)
        [event] = [
            e
            for e in get_provider().list_events(["charge.dispute.created"], since)
            if e.dispute and e.dispute.id == opened["id"]
        ]
        process_event(event, received_via="recon")
    return recorded_dispute(app, opened["id"]).public_id
