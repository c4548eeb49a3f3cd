"""Public ids (`pay_…`, `msg_…`): the prefix, the length, the alphabet, every character used
about equally often (no bias from mapping random bytes onto 62 characters)."""

from __future__ import annotations

import string
from collections import Counter

from app.models.base import public_id

ALPHABET = set(string.ascii_letters + string.digits)


def test_a_public_id_has_its_prefix_and_length_from_the_alphabet():
    ids = {public_id("pay_") for _ in range(2000)}
    assert len(ids) == 2000
    for made in ids:
        assert made.startswith("pay_") and len(made) == 4 + 24
        assert set(made[4:]) <= ALPHABET
    assert len(public_id("we_", 40)) == 3 + 40


def test_every_character_is_about_equally_likely():
    counts = Counter("".join(public_id("", 24) for _ in range(20_000)))
    assert set(counts) == ALPHABET
    expected = 20_000 * 24 / 62  # 7,742 each
    # A bias of 256 % 62 (the first 8 characters drawn 5 times in 256, the others 4) would put
    # them 25% above the rest; chance alone stays within a few percent.
    assert max(counts.values()) < 1.08 * expected and min(counts.values()) > 0.92 * expected
