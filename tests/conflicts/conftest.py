"""Conflict tests build their conflicts with the root conftest's `paid_after_failed` and
`failed_then_paid` (tests/support/factories.py says how a real one is made)."""

from __future__ import annotations

from app.psp import get_provider


def psp_refunds(app, payment_intent_id: str) -> list:
    """Every refund of the payment intent at the emulator, as the PSP adapter reads them."""
    with app.app_context():
        return list(get_provider().list_refunds(payment_intent_id))
