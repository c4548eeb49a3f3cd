"""The one table of payment method words (app/common/payment_methods.py): every page reads a card by
its brand and any other method by its type, the same way."""

from app.common import payment_methods as methods


def test_a_card_reads_as_its_brand_and_its_last_4():
    assert methods.label("card", "visa", "4242") == "Visa •••• 4242"
    assert methods.label("card", "amex", "0005") == "American Express •••• 0005"
    assert methods.label("card", None, "4242") == "Card •••• 4242"


def test_other_methods_read_as_their_type():
    assert methods.label("sepa_debit", None, "3000") == "SEPA Direct Debit •••• 3000"
    assert methods.label("ideal", None, None) == "iDEAL"
    assert methods.name("us_bank_account") == "ACH Direct Debit"


def test_a_code_stripe_adds_later_still_reads_and_nothing_recorded_is_empty():
    assert methods.label("revolut_pay", None, None) == "Revolut Pay"
    assert methods.name("card", "new_brand") == "New Brand"
    assert methods.name(None) is None
    assert methods.label(None, None, None) == ""


def test_a_search_word_means_a_type_or_brand_by_its_code_its_name_or_the_names_first_word():
    assert methods.named("sepa") == (["sepa_debit"], [])
    assert methods.named("SEPA  direct debit") == (["sepa_debit"], [])
    assert methods.named("American Express") == ([], ["amex"])
    assert methods.named("amex") == ([], ["amex"])
    assert methods.named("card") == (["card"], [])
    assert methods.named("ac") == ([], [])  # too short to be a first word
    assert methods.named("direct") == ([], [])  # a later word names nothing
