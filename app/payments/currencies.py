"""Currencies PayBridge takes, and how many minor digits each has, in Stripe's terms.

The one place for these rules: validation, the dashboard, the shop and the return page all
read amounts through `exponent()`. Stripe's lists differ from ISO 4217's in places (ISK, IQD,
LYD): amounts go to Stripe, so Stripe's are the ones that count.
"""

from __future__ import annotations

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


def exponent(currency: str | None) -> int:
    """Minor digits of a currency: 0 (JPY), 3 (KWD) or 2 (everything else)."""
    code = (currency or "").upper()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2
