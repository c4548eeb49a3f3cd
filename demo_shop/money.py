"""Money as people read it. Amounts are integers in minor units, as PayBridge takes them."""

from __future__ import annotations

# ISO 4217 currencies without cents, and with thousandths; every other has two decimals.
ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())
SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}


def decimals(currency: str) -> int:
    code = (currency or "").upper()
    if code in ZERO_DECIMAL:
        return 0
    return 3 if code in THREE_DECIMAL else 2


def format_money(amount: int, currency: str) -> str:
    """2900, "EUR" → "€29.00"; 500, "JPY" → "500 JPY"."""
    code = (currency or "").upper()
    digits = decimals(code)
    major, minor = divmod(amount, 10**digits)  # integers only: 0.1 + 0.2 is not money
    value = f"{major:,}.{minor:0{digits}d}" if digits else f"{amount:,}"
    symbol = SYMBOLS.get(code)
    return f"{symbol}{value}" if symbol else f"{value} {code}"
