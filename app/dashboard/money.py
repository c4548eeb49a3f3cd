"""Minor units <-> what a person types and reads, per ISO 4217 currency exponent."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, InvalidOperation

from app.payments.currencies import exponent


def format_minor(amount: int | None, currency: str) -> str:
    """12345, "EUR" -> "123.45"; 500, "JPY" -> "500"."""
    if amount is None:
        return ""
    exp = exponent(currency)
    if exp == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d}"


def format_money(amount: int | None, currency: str) -> str:
    if amount is None:
        return ""
    return f"{format_minor(amount, currency)} {(currency or '').upper()}"


def parse_major(text: str) -> Decimal:
    """A non-negative decimal as typed (`12.5`, `12,50`); ValueError with a human message."""
    cleaned = (text or "").strip().replace(" ", "").replace(",", ".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError("Enter an amount like 12.50.") from None
    if not value.is_finite() or value < 0:
        raise ValueError("Enter an amount of zero or more.")
    if value > Decimal("1e15"):
        raise ValueError("That amount is too large.")
    return value


def to_minor(value: Decimal, currency: str, *, round_up: bool = False) -> int:
    """A major-unit amount in minor units; digits beyond the exponent round so the range
    stays inclusive of what the person meant (a lower bound rounds up, an upper bound down)."""
    exp = exponent(currency)
    scaled = value * (10**exp)
    floor = int(scaled.to_integral_value(rounding=ROUND_DOWN))
    if round_up and scaled != floor:
        return floor + 1
    return floor
