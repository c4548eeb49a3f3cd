"""Stripe's test cards and SEPA test IBANs (CONTRACT §5) and what paying with them does."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Decline:
    code: str
    decline_code: str | None
    message: str
    # Stripe's own refusal (Radar blocked it as too risky): never sent to the card network.
    blocked: bool = False


DECLINED = "Your card was declined."

CARD_DECLINES = {
    "4000000000000002": Decline("card_declined", "generic_decline", DECLINED),
    "4000000000009995": Decline(
        "card_declined", "insufficient_funds", "Your card has insufficient funds."
    ),
    "4000000000009987": Decline("card_declined", "lost_card", DECLINED),
    "4000000000009979": Decline("card_declined", "stolen_card", DECLINED),
    "4000000000000069": Decline("expired_card", "expired_card", "Your card has expired."),
    "4000000000000127": Decline(
        "incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."
    ),
    "4000000000000119": Decline(
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    "4242424242424241": Decline(
        "incorrect_number", "incorrect_number", "Your card number is incorrect."
    ),
    # Attaches fine but the charge fails.
    "4000000000000341": Decline("card_declined", "generic_decline", DECLINED),
    # Radar's highest risk level: always blocked, the shopper told only that it was declined.
    "4100000000000019": Decline("card_declined", "fraudulent", DECLINED, blocked=True),
}

THREE_D_SECURE = {"4000002500003155", "4000000000003220", "4000002760003184", "4000000000003063"}

AUTH_FAILED = Decline(
    "payment_intent_authentication_failure",
    None,
    "We are unable to authenticate your payment method. Please choose a different payment "
    "method and try again.",
)
INCORRECT_NUMBER = CARD_DECLINES["4242424242424241"]

# SEPA Direct Debit test IBANs: True settles succeeded, False settles failed.
SEPA_OUTCOMES = {
    "AT611904300234573201": True,
    "DE89370400440532013000": True,
    "AT321904300235473204": True,
    "DE62370400440532013001": False,
    "IT60X0542811101000000123456": False,
    "AT861904300235473202": False,
}
INVALID_IBAN = Decline("invalid_bank_account_iban", None, "The IBAN you entered is invalid.")


def normalize(value: str) -> str:
    return re.sub(r"[\s-]", "", value or "").upper()


def luhn_ok(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_outcome(number: str) -> Decline | str:
    """A Decline, or "ok" / "3ds" for a card that succeeds (after authentication for "3ds")."""
    number = normalize(number)
    if number in CARD_DECLINES:
        return CARD_DECLINES[number]
    if number in THREE_D_SECURE:
        return "3ds"
    return "ok" if luhn_ok(number) else INCORRECT_NUMBER


def iban_outcome(iban: str) -> bool | None:
    """True/False for the eventual settlement; None if the IBAN is malformed."""
    iban = normalize(iban)
    if iban in SEPA_OUTCOMES:
        return SEPA_OUTCOMES[iban]
    if re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", iban):
        return True
    return None
