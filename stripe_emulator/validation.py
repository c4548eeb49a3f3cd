"""Value checks Stripe applies to parameters: currencies, amounts, emails, URLs, enums, booleans.

Codes follow Stripe's documented error codes (https://docs.stripe.com/error-codes):
``parameter_invalid_integer``, ``amount_too_large``, ``email_invalid``, ``url_invalid``. Stripe
answers a value outside an enum (an unknown currency, method type, status or boolean) with a
message and ``param`` but no ``code``, so these do too.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from .errors import invalid

# Stripe's largest amount in minor units (8 digits: 999,999.99 in a two-decimal currency).
MAX_AMOUNT = 99_999_999
# Stripe's smallest charge per currency in minor units ("Minimum and maximum charge amounts",
# docs.stripe.com/currencies); other currencies' minimum is 0.50 USD at the day's rate, which
# the emulator does not judge.
MIN_CHARGE_AMOUNTS = {
    "usd": 50, "aed": 200, "aud": 50, "bgn": 100, "brl": 50, "cad": 50, "chf": 50, "czk": 1500,
    "dkk": 250, "eur": 50, "gbp": 30, "hkd": 400, "huf": 17500, "inr": 50, "jpy": 50,
    "mxn": 1000, "myr": 200, "nok": 300, "nzd": 50, "pln": 200, "ron": 200, "sek": 300,
    "sgd": 50, "thb": 1000,
}  # fmt: skip
# Stripe's integers are 64-bit; anything longer is not an integer to it.
MAX_INT64 = 2**63 - 1

# Active ISO 4217 codes, plus the retired ones Stripe still lists as supported.
CURRENCIES = frozenset(
    """
    aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd btn bwp
    byn bzd cad cdf chf clp cny cop crc cup cve czk djf dkk dop dzd egp ern etb eur fjd fkp gbp
    gel ghs gip gmd gnf gtq gyd hkd hnl htg huf idr ils inr iqd irr isk jmd jod jpy kes kgs khr
    kmf kpw krw kwd kyd kzt lak lbp lkr lrd lsl lyd mad mdl mga mkd mmk mnt mop mru mur mvr mwk
    mxn myr mzn nad ngn nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar
    sbd scr sdg sek sgd shp sle sos srd ssp stn svc syp szl thb tjs tmt tnd top try ttd twd tzs
    uah ugx usd uyu uzs ves vnd vuv wst xaf xcd xcg xof xpf yer zar zmw zwg
    hrk mro sll std vef
    """.split()
)

# The values stripe-python 16.1.0 declares for allowed_/excluded_payment_method_types
# (params/checkout/_session_create_params.py). The emulator can pay with card and sepa_debit.
PAYMENT_METHOD_TYPES = frozenset(
    """
    acss_debit affirm afterpay_clearpay alipay alma amazon_pay au_becs_debit bacs_debit bancontact
    billie bizum blik boleto card cashapp crypto customer_balance eps fpx giropay grabpay ideal
    kakao_pay klarna konbini kr_card link mb_way mobilepay multibanco naver_pay nz_bank_account
    oxxo p24 pay_by_bank payco paynow paypal paypay payto pix promptpay revolut_pay samsung_pay
    satispay scalapay sepa_debit sequra sofort sunbit swish twint upi us_bank_account wechat_pay
    zip
    """.split()
)

# A refund's ``failure_reason``, as Stripe documents it: the control route that fails a refund
# and the refund_fail fault accept these.
REFUND_FAILURE_REASONS = (
    "charge_for_pending_refund_disputed", "declined", "expired_or_canceled_card",
    "insufficient_funds", "lost_or_stolen_card", "merchant_request", "unknown",
)  # fmt: skip

_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_DOMAIN_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def one_of(values) -> str:
    """``a, b, or c`` as in Stripe's enum messages."""
    values = list(values)
    if len(values) <= 2:
        return " or ".join(values)
    return ", ".join(values[:-1]) + ", or " + values[-1]


def enum(value, param: str, allowed) -> str:
    """``value`` if it is one of ``allowed`` (an ordered collection), else Stripe's 400."""
    if not isinstance(value, str) or value not in allowed:
        raise invalid(param, f"Invalid {param}: must be one of {one_of(allowed)}")
    return value


def boolean(value, param: str) -> bool:
    """Stripe's form booleans: ``true`` / ``false``."""
    if value in ("true", "false"):
        return value == "true"
    raise invalid(param, f"Invalid boolean: {_shown(value)}")


def currency(value, param: str) -> str:
    cur = value.lower() if isinstance(value, str) else ""
    if cur not in CURRENCIES:
        raise invalid(
            param,
            f"Invalid currency: {_shown(value)}. Stripe currently supports these currencies: "
            + ", ".join(sorted(CURRENCIES)),
        )
    return cur


def amount(value: int, param: str) -> int:
    if value > MAX_AMOUNT:
        raise invalid(
            param,
            f"This value must be less than or equal to {MAX_AMOUNT} (it currently is {value}).",
            "amount_too_large",
        )
    return value


def decimal_amount(value, param: str) -> int:
    """``unit_amount_decimal``: ≥ 0, at most 12 decimal places, within Stripe's maximum."""
    try:
        dec = Decimal(str(value))
    except InvalidOperation:
        dec = None
    if dec is None or not dec.is_finite() or dec < 0 or -dec.as_tuple().exponent > 12:
        raise invalid(param, f"Invalid decimal: {_shown(value)}")
    if dec > MAX_AMOUNT:
        raise invalid(
            param,
            f"This value must be less than or equal to {MAX_AMOUNT} (it currently is {dec}).",
            "amount_too_large",
        )
    return int(dec.to_integral_value())


def email(value, param: str) -> str:
    if isinstance(value, str) and len(value) <= 512 and value.count("@") == 1:
        local, domain = value.split("@")
        if _EMAIL_LOCAL.fullmatch(local) and ".." not in local and _domain_ok(domain):
            return value
    raise invalid(param, f"Invalid email address: {_shown(value)}", "email_invalid")


def url(value, param: str) -> str:
    """An absolute http(s) URL with a host; ``{CHECKOUT_SESSION_ID}`` may appear anywhere."""
    ok = False
    if isinstance(value, str) and value == value.strip() and not re.search(r"\s", value):
        try:
            parts = urlsplit(value.replace("{CHECKOUT_SESSION_ID}", "x"))
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            ok = False
    if not ok:
        raise invalid(param, "Not a valid URL", "url_invalid")
    return value


def _domain_ok(domain: str) -> bool:
    if domain == "localhost":
        return True
    labels = domain.split(".")
    return len(labels) >= 2 and all(_DOMAIN_LABEL.fullmatch(label) for label in labels)


def _shown(value) -> str:
    return value if isinstance(value, str) else repr(value)


# -- control routes' JSON bodies ---------------------------------------------------------
def json_kind(value) -> str:
    kinds = {list: "an array", dict: "an object", str: "a string", bool: "a boolean"}
    return "null" if value is None else kinds.get(type(value), "a number")


def json_string(body: dict, key: str) -> str | None:
    """``body[key]`` if absent, null or a string; a 400 otherwise."""
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid(key, f"{key} must be a string, not {json_kind(value)}.")
    return value


def json_boolean(body: dict, key: str, default: bool = False) -> bool:
    """``body[key]``: a JSON boolean (or "true"/"false", as forms send); a 400 otherwise."""
    value = body.get(key, default)
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise invalid(key, f"{key} must be a boolean, not {json_kind(value)}.")


def json_number(body: dict, key: str, default, *, integer: bool = False, minimum=None):
    """A finite JSON number (or a numeric string, as forms send) in ``body[key]``."""
    value = body.get(key, default)
    try:
        if isinstance(value, bool) or value is None:
            raise ValueError
        number = float(value)
        if not math.isfinite(number) or (integer and number != int(number)):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        kind = "an integer" if integer else "a number"
        raise invalid(key, f"{key} must be {kind}, got {json.dumps(value)}.") from None
    if minimum is not None and number < minimum:
        raise invalid(key, f"{key} must be at least {minimum}, got {json.dumps(value)}.")
    return int(number) if integer else number
