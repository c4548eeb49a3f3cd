"""Money: integer minor units of an ISO 4217 currency, and the one place that turns them into
text and back.

Which currencies PayBridge takes and how many minor digits each has are Stripe's rules (its
lists differ from ISO 4217's in places: ISK, IQD, LYD); amounts go to Stripe, so Stripe's are
the ones that count. Validation, the dashboard and the return page all read amounts through
`exponent()`. Only integers and Decimals, never floats: 0.1 + 0.2 is not money.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, InvalidOperation

# Active ISO 4217 codes (the fund and precious-metal codes are left out: no PSP charges them).
CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
    KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
    MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
    SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
    UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    """.split()
)
# No minor unit: an amount of 500 JPY is ¥500 (Stripe's zero-decimal list).
ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
# Three minor digits: 1000 is 1 KWD, and Stripe wants the last digit to be 0.
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())

# Stripe's largest charge: eight digits of minor units, in every currency.
MAX_CHARGE_AMOUNT = 99_999_999
# Stripe's smallest charge per presentment currency, in minor units, from its table "Minimum
# and maximum charge amounts" (docs.stripe.com/currencies). Stripe refuses less at once
# (`amount_too_small`); for a currency not listed its minimum is the equivalent of 0.50 USD at
# the day's rate in the account's settlement currency, which only Stripe can judge.
MIN_CHARGE_AMOUNTS = {
    "USD": 50,
    "AED": 200,
    "AUD": 50,
    "BGN": 100,
    "BRL": 50,
    "CAD": 50,
    "CHF": 50,
    "CZK": 1500,
    "DKK": 250,
    "EUR": 50,
    "GBP": 30,
    "HKD": 400,
    "HUF": 17500,
    "INR": 50,
    "JPY": 50,
    "MXN": 1000,
    "MYR": 200,
    "NOK": 300,
    "NZD": 50,
    "PLN": 200,
    "RON": 200,
    "SEK": 300,
    "SGD": 50,
    "THB": 1000,
}


def exponent(currency: str | None) -> int:
    """Minor digits of a currency: 0 (JPY), 3 (KWD) or 2 (everything else)."""
    code = (currency or "").upper()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def charge_amount_problem(amount: int, currency: str) -> str | None:
    """Why Stripe would refuse to charge `amount` minor units of `currency`, or None: under the
    currency's minimum, over eight digits, or (three-decimal currencies) not whole hundredths.
    The message names the limit in the currency's own units and in minor units."""
    code = (currency or "").upper()
    minimum = MIN_CHARGE_AMOUNTS.get(code, 1)
    if amount < minimum:
        return (
            f"The smallest {code} amount the PSP charges is {format_money(minimum, code)} "
            f"(amount {minimum}); got {amount}."
        )
    if amount > MAX_CHARGE_AMOUNT:
        return (
            f"The largest amount the PSP charges is {MAX_CHARGE_AMOUNT} in minor units "
            f"({format_money(MAX_CHARGE_AMOUNT, code)}); got {amount}."
        )
    return hundredths_problem(amount, code)


def hundredths_problem(amount: int, currency: str) -> str | None:
    """Stripe charges and refunds three-decimal currencies in whole hundredths only."""
    code = (currency or "").upper()
    if code in THREE_DECIMAL and amount % 10:
        return (
            f"{code} amounts are in thousandths and must end in 0 "
            "(the PSP charges and refunds whole hundredths)."
        )
    return None


def format_minor(amount: int | None, currency: str, *, grouped: bool = False) -> str:
    """12345, "EUR" -> "123.45" ("1,234.56" grouped); 500, "JPY" -> "500"."""
    if amount is None:
        return ""
    exp = exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**exp)
    whole_text = f"{whole:,}" if grouped else str(whole)
    return f"{sign}{whole_text}.{frac:0{exp}d}" if exp else f"{sign}{whole_text}"


def format_money(amount: int | None, currency: str, *, grouped: bool = False) -> str:
    """12345, "eur" -> "123.45 EUR": the amount a person reads, with its currency code."""
    if amount is None:
        return ""
    return f"{format_minor(amount, currency, grouped=grouped)} {(currency or '').upper()}"


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


def parse_amount(text: str, currency: str) -> int:
    """An exact amount typed in major units (`12.50`, `12,5`) -> minor units, more than zero;
    ValueError saying why when the currency cannot carry it."""
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
