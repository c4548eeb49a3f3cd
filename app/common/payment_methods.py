"""How a payment was paid, in words: Stripe's payment method types and card brands.

`payments.method_type` and `card_brand` (and `payment_attempts`') hold Stripe's codes; this
module is the one place that says which codes the dashboard offers and how each one reads — the
transactions list's filter and search, the overview's methods and every "Visa •••• 4242".
A code not listed (Stripe adds types) reads as itself, capitalised, and is still stored and shown.
"""

from __future__ import annotations

# The types a person filters and searches by, in the order the filter offers them.
METHOD_TYPES: dict[str, str] = {
    "card": "Card",
    "sepa_debit": "SEPA Direct Debit",
    "ideal": "iDEAL",
    "bancontact": "Bancontact",
    "sofort": "Sofort",
    "giropay": "giropay",
    "eps": "EPS",
    "p24": "Przelewy24",
    "klarna": "Klarna",
    "paypal": "PayPal",
    "link": "Link",
    "us_bank_account": "ACH Direct Debit",
    "bacs_debit": "Bacs Direct Debit",
}

# Stripe's card brand codes, with the names Stripe's own dashboard uses.
CARD_BRANDS: dict[str, str] = {
    "visa": "Visa",
    "mastercard": "Mastercard",
    "amex": "American Express",
    "discover": "Discover",
    "diners": "Diners Club",
    "jcb": "JCB",
    "unionpay": "UnionPay",
    "cartes_bancaires": "Cartes Bancaires",
}


def named(words: str) -> tuple[list[str], list[str]]:
    """The method types and card brands a search for `words` means: a code ("sepa_debit"),
    the name ("SEPA Direct Debit", "American Express") or its first word ("sepa", "ach"), in
    any case."""
    wanted = " ".join(words.lower().split())

    def means(code: str, name: str) -> bool:
        name = name.lower()
        return wanted in (code, name) or (len(wanted) >= 3 and name.split()[0] == wanted)

    return (
        [code for code, name in METHOD_TYPES.items() if means(code, name)],
        [code for code, name in CARD_BRANDS.items() if means(code, name)],
    )


def _as_words(code: str) -> str:
    return code.replace("_", " ").title()


def type_words(method_type: str) -> str:
    """What a person reads for a payment method type."""
    return METHOD_TYPES.get(method_type) or _as_words(method_type)


def brand_words(card_brand: str) -> str:
    """What a person reads for a card brand."""
    return CARD_BRANDS.get(card_brand) or _as_words(card_brand)


def name(method_type: str | None, card_brand: str | None = None) -> str | None:
    """A card by its brand ("Visa"), any other method by its type ("SEPA Direct Debit");
    None when nothing was recorded."""
    if method_type == "card" and card_brand:
        return brand_words(card_brand)
    if method_type:
        return type_words(method_type)
    return None


def label(method_type: str | None, card_brand: str | None, last4: str | None) -> str:
    """The one line shown for how a shopper paid: "Visa •••• 4242", "SEPA Direct Debit •••• 3000",
    "iDEAL"; empty when nothing was recorded."""
    words = name(method_type, card_brand) or ""
    if last4:
        return f"{words} •••• {last4}".strip()
    return words
