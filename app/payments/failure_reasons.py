"""Why a FAILED payment failed, as a code a merchant filters on, and the words for each.

`payments.failure_reason` holds one of these codes (NULL unless FAILED); `failure_code` and
`failure_message` keep the PSP's own words beside it. This module is the one place that says
which code a way of failing gets and what it reads as.
"""

from __future__ import annotations

from datetime import datetime

from app.models.payment import CANCELED_FAILURE_REASONS

DECLINED = "declined"
EXPIRED = "expired"
CANCELED_BY_SHOPPER = "canceled_by_shopper"
CANCELED_BY_MERCHANT = "canceled_by_merchant"
REJECTED_BY_PSP = "rejected_by_psp"

FAILURE_REASONS: dict[str, str] = {
    DECLINED: "Declined",
    EXPIRED: "Expired",
    CANCELED_BY_SHOPPER: "Canceled by the shopper",
    CANCELED_BY_MERCHANT: "Canceled by the merchant",
    REJECTED_BY_PSP: "Rejected by the payment provider",
}

# Reasons that are a decision of the shopper or merchant, not a failure to pay: shown neutral
# ("Canceled"), never as a red "Payment failed".
CANCELED_REASONS = CANCELED_FAILURE_REASONS
assert frozenset({CANCELED_BY_SHOPPER, CANCELED_BY_MERCHANT}) == CANCELED_REASONS


def words(code: str | None) -> str | None:
    """What a person reads for a code (an unknown code reads as itself)."""
    if code is None:
        return None
    return FAILURE_REASONS.get(code, code)


def for_expiry(
    *,
    last_decline: datetime | None = None,
    shopper_canceled_at: datetime | None = None,
    last_decline_code: str | None = None,
) -> str:
    """A checkout that closed without a payment: canceled by the shopper if their last act was
    leaving by the hosted page's back link; declined if it was a declined attempt (and then
    they gave up), or rejected by the PSP when the PSP itself refused that attempt (Radar's
    block: `last_decline_code`, its decline code or else its failure code); with neither it
    simply expired. The PSP dates a decline in whole seconds: a leave within the decline's
    second counts as after it."""
    if shopper_canceled_at is not None and (
        last_decline is None or shopper_canceled_at >= last_decline
    ):
        return CANCELED_BY_SHOPPER
    if last_decline is None:
        return EXPIRED
    return REJECTED_BY_PSP if last_decline_code in PSP_REFUSAL_CODES else DECLINED


# Stripe's codes for a refusal by the PSP itself, not by the shopper's bank: Radar's block
# (its risk levels, a rule, the merchant's block list; `fraudulent` is Stripe's suspicion).
PSP_REFUSAL_CODES = frozenset(
    {"fraudulent", "highest_risk_level", "elevated_risk_level", "rule", "merchant_blacklist"}
)


def default_for(failure_code: str | None) -> str:
    """The code of a failure whose cause the caller did not name, from the PSP's code (a
    decline code before a failure code): a bank's or issuer's decline is `declined`; only the
    PSP's own refusal, or a failure it gave no code for, is `rejected_by_psp`."""
    if failure_code == "expired":
        return EXPIRED
    if failure_code is None or failure_code in PSP_REFUSAL_CODES:
        return REJECTED_BY_PSP
    return DECLINED
