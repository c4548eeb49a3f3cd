"""Stripe's limits on what a checkout create carries, in one place: PayBridge's API refuses
what breaks them (`app/payments/validation.py`) before any call to Stripe, and the adapter
builds its requests within them. Amounts are money's rules: `app/common/money.py`.

From Stripe's API reference: metadata (docs.stripe.com/api/metadata) holds up to 50 keys,
each key up to 40 characters without square brackets, each value up to 500 characters;
`client_reference_id` up to 200 characters; any other string up to 5,000 characters.
"""

from __future__ import annotations

METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_VALUE_LENGTH = 500
METADATA_KEY_FORBIDDEN = "[]"
# PayBridge's own keys go with every session first; a merchant has the rest of the 50.
PAYBRIDGE_METADATA_KEYS = ("paybridge_payment_id", "merchant_reference")
MERCHANT_METADATA_MAX_KEYS = METADATA_MAX_KEYS - len(PAYBRIDGE_METADATA_KEYS)

# The merchant's order id travels as a metadata value and names the product when there is
# no description, both within Stripe's limits with room to spare.
MERCHANT_REFERENCE_MAX_LENGTH = 200
# Becomes the product name of the checkout's line item (Stripe: a string, 5,000 at most).
DESCRIPTION_MAX_LENGTH = 500
# An address longer than RFC 5321's 254 characters can receive no mail (Stripe takes 512).
EMAIL_MAX_LENGTH = 254
