"""What the dashboard needs about refunds: amounts as typed, and the refunds' timeline."""

from __future__ import annotations

from decimal import Decimal

from app.dashboard.money import format_money, parse_major, to_minor
from app.models import Refund
from app.payments.currencies import exponent


def parse_refund_amount(text: str, currency: str) -> int:
    """An amount typed in major units (`12.50`, `12,5`) → minor units; ValueError if unusable."""
    value = parse_major(text)
    minor = to_minor(value, currency)
    if Decimal(minor) != value * (10 ** exponent(currency)):
        digits = exponent(currency)
        raise ValueError(
            f"{currency} takes {digits} decimal place{'' if digits == 1 else 's'} at most."
            if digits
            else f"{currency} has no decimal places: enter a whole amount."
        )
    if minor <= 0:
        raise ValueError("Enter an amount greater than zero.")
    return minor


def major_text(amount: int, currency: str) -> str:
    """Minor units as the plain number a person would type (no thousands separators)."""
    digits = exponent(currency)
    if not digits:
        return str(amount)
    return f"{Decimal(amount) / (10**digits):.{digits}f}"


def refund_timeline(refunds: list[Refund]) -> list[dict]:
    """Every refund's request and outcome, oldest first, for the payment's timeline."""
    entries = []
    for r in refunds:
        money = format_money(r.amount, r.currency)
        entries.append(
            {
                "at": r.created_at,
                "refund": r,
                "status": "pending",
                "text": f"Refund {r.public_id} of {money} requested ({r.source})",
            }
        )
        if r.completed_at is not None:
            text = f"Refund {r.public_id} of {money} {r.status}"
            if r.failure_reason:
                text += f": {r.failure_reason}"
            entries.append({"at": r.completed_at, "refund": r, "status": r.status, "text": text})
    entries.sort(key=lambda e: (e["at"], e["refund"].id))
    return entries
