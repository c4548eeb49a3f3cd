"""The demo shop's accounts: sign-up and log-in never tell whether an address has an account,
passwords are judged by zxcvbn (12345678 is refused), and both are rate limited per address
and per account."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import func, select

from demo_shop import accounts
from demo_shop.blueprints.shop.routes import SIGNED_UP
from demo_shop.extensions import db as shop_db
from demo_shop.models import Customer
from tests.shop.support import Shopper

STRONG = "violet-harbour-lantern"


def _shopper(shop, address: str = "127.0.0.1") -> Shopper:
    client = shop.app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return Shopper(client)


def _flashes(shopper: Shopper, response) -> str:
    """The page a redirect leads to, as the shopper reads it."""
    return html.unescape(shopper.page(response.headers["Location"]))


def _customers(shop) -> int:
    with shop.app.app_context():
        return shop_db.session.scalar(select(func.count()).select_from(Customer))


# -- no enumeration -------------------------------------------------------------------------------


def test_signing_up_with_a_taken_address_answers_as_a_new_one_does(shop):
    owner = _shopper(shop)
    assert owner.signup_only("ada@example.com", STRONG).status_code == 303

    new, taken = _shopper(shop, "10.0.0.1"), _shopper(shop, "10.0.0.2")
    new_answer = new.signup_only("grace@example.com", "another-quiet-meadow")
    taken_answer = taken.signup_only("ADA@example.com", "another-quiet-meadow")

    assert new_answer.status_code == taken_answer.status_code == 303
    assert new_answer.headers["Location"] == taken_answer.headers["Location"]
    new_page, taken_page = _flashes(new, new_answer), _flashes(taken, taken_answer)
    assert SIGNED_UP.format(email="grace@example.com") in new_page
    assert SIGNED_UP.format(email="ada@example.com") in taken_page
    # Neither is logged in; the taken account keeps its owner's password.
    assert "Log out" not in new_page and "Log out" not in taken_page
    assert _customers(shop) == 2
    assert taken.login("ada@example.com", "another-quiet-meadow").status_code == 422
    assert owner.login("ada@example.com", STRONG).status_code == 303


def test_a_wrong_password_and_an_unknown_address_get_the_same_answer(shop):
    _shopper(shop).signup_only("ada@example.com", STRONG)
    wrong_password = _shopper(shop, "10.0.0.3").login("ada@example.com", "not-her-password")
    no_account = _shopper(shop, "10.0.0.4").login("nobody@example.com", "not-her-password")

    assert wrong_password.status_code == no_account.status_code == 422
    message = "That email and password do not match an account."
    assert message in wrong_password.get_data(as_text=True)
    assert message in no_account.get_data(as_text=True)


def test_both_paths_of_sign_up_and_log_in_hash_a_password(shop, monkeypatch):
    """Similar work whether or not the account exists: each path hashes once (unit test of the
    two account functions; hashing is what takes the time)."""
    calls = []
    real_generate, real_check = accounts.generate_password_hash, accounts.check_password_hash
    monkeypatch.setattr(
        accounts, "generate_password_hash", lambda pw: calls.append("hash") or real_generate(pw)
    )
    monkeypatch.setattr(
        accounts, "check_password_hash", lambda h, pw: calls.append("check") or real_check(h, pw)
    )
    with shop.app.app_context():
        assert accounts.register("ada@example.com", "Ada", STRONG) is not None
        shop_db.session.commit()
        new_signup, calls[:] = list(calls), []
        assert accounts.register("ada@example.com", "Ada", STRONG) is None
        taken_signup, calls[:] = list(calls), []
        assert accounts.authenticate("ada@example.com", "wrong-password-here") is None
        known, calls[:] = list(calls), []
        assert accounts.authenticate("nobody@example.com", "wrong-password-here") is None
        unknown = list(calls)

    assert new_signup == taken_signup == ["hash"]
    assert known == unknown == ["check"]  # her hash, or a dummy one


# -- the password policy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("12345678", "This is a top-10 common password."),
        ("password1", "This is a very common password."),
        ("qwertyuiop", "too easy to guess"),
        ("aaaaaaaaaaaa", "too easy to guess"),
        ("ada.lovelace!", "too easy to guess"),  # the shopper's own name and address
        ("short", "Use at least 8 characters."),
    ],
)
def test_a_guessable_password_is_refused_with_advice(shop, password, why):
    shopper = _shopper(shop)
    response = shopper.signup_only("ada.lovelace@example.com", password, name="Ada Lovelace")

    assert response.status_code == 422
    assert why in response.get_data(as_text=True)
    assert _customers(shop) == 0


def test_a_strong_password_is_accepted(shop):
    assert _shopper(shop).signup("ada@example.com", STRONG).status_code == 303
    assert _customers(shop) == 1


# -- rate limits ----------------------------------------------------------------------------------


def test_sign_ups_for_one_account_are_limited_from_any_address(shop):
    statuses = [
        _shopper(shop, f"10.1.0.{n}").signup_only("ada@example.com", STRONG).status_code
        for n in range(6)
    ]

    assert statuses == [303] * 5 + [429]
    assert _shopper(shop, "10.1.0.99").signup_only("bob@example.com", STRONG).status_code == 303


def test_sign_ups_from_one_address_are_limited(shop):
    shopper = _shopper(shop, "10.2.0.1")
    statuses = [
        shopper.signup_only(f"shopper{n}@example.com", STRONG).status_code for n in range(21)
    ]

    assert statuses == [303] * 20 + [429]


def test_failed_log_ins_to_one_account_are_limited_from_any_address(shop):
    _shopper(shop).signup_only("ada@example.com", STRONG)
    _shopper(shop).signup_only("bob@example.com", STRONG)
    guesses = [
        _shopper(shop, f"10.3.0.{n}").login("ada@example.com", f"guess-{n}").status_code
        for n in range(5)
    ]
    assert guesses == [422] * 5

    limited = _shopper(shop, "10.3.0.50").login("ada@example.com", STRONG)
    assert limited.status_code == 429
    assert _shopper(shop, "10.3.0.51").login("bob@example.com", STRONG).status_code == 303


def test_successful_log_ins_do_not_use_up_the_allowance(shop):
    _shopper(shop).signup_only("ada@example.com", STRONG)
    statuses = [
        _shopper(shop, "10.4.0.1").login("ada@example.com", STRONG).status_code for _ in range(8)
    ]
    assert statuses == [303] * 8
