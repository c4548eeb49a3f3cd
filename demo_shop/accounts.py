"""Shopper accounts. Services flush; the caller commits.

No page tells whether an email address has an account: a sign-up answers the same whether the
address was new or taken, a failed log-in says only that the pair does not match, and both
paths hash a password either way, so their timing does not tell either. (Without e-mail
verification a person can still learn it by logging in with the password they signed up
with; the per-account rate limits on the routes keep that slow.) Passwords are judged by
zxcvbn, which estimates how many guesses a password takes from dictionaries, keyboard
patterns, sequences and the shopper's own name and address, instead of rules that accept
"12345678".
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash
from zxcvbn import zxcvbn

from demo_shop.extensions import db
from demo_shop.models import Customer

# zxcvbn's scores run 0-4; 3 is "safely unguessable: moderate protection from offline
# slow-hash scenario" (fewer than 10^10 guesses is a 2).
MIN_PASSWORD_SCORE = 3
MIN_PASSWORD_LENGTH = 8
# zxcvbn's matching grows faster than linearly with length: judge the first this many.
JUDGED_CHARACTERS = 100

# A hash to check against when nobody has the email, so a wrong email costs what a wrong
# password does.
_DUMMY_HASH = generate_password_hash("demo-shop-no-such-customer")


class AccountError(Exception):
    """A sign-up the shop refuses, with a message for the shopper."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_customer(email: str) -> Customer | None:
    return db.session.scalar(select(Customer).where(Customer.email == normalise_email(email)))


def password_problem(password: str, *, email: str = "", name: str = "") -> str | None:
    """Why `password` is too easy to guess (zxcvbn's words), or None when it is good enough."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    # The shopper's own name and address, whole and word by word ("Ada Lovelace": ada, lovelace).
    whole = [value.lower() for value in (email, email.partition("@")[0], name) if value]
    user_inputs = whole + [word for value in whole for word in re.split(r"[^\w]+", value) if word]
    verdict = zxcvbn(password[:JUDGED_CHARACTERS], user_inputs=user_inputs)
    if verdict["score"] >= MIN_PASSWORD_SCORE:
        return None
    feedback = verdict["feedback"]
    advice = " ".join(filter(None, [feedback.get("warning"), *feedback.get("suggestions", [])]))
    return f"This password is too easy to guess. {advice}".strip()


def register(email: str, name: str, password: str) -> Customer | None:
    """A new account, or None when the address has one already (the caller answers the same
    either way: AccountError only for a weak password, which says nothing about the address).
    The password is hashed on both paths."""
    problem = password_problem(password, email=normalise_email(email), name=name)
    if problem:
        raise AccountError(problem)
    password_hash = generate_password_hash(password)
    if find_customer(email) is not None:
        return None
    customer = Customer(email=normalise_email(email), name=name.strip())
    customer.password_hash = password_hash
    db.session.add(customer)
    try:
        db.session.flush()
    except IntegrityError:  # a parallel sign-up took the address first
        db.session.rollback()
        return None
    return customer


def authenticate(email: str, password: str) -> Customer | None:
    """The customer the email and password name; an unknown email costs the same hashing."""
    customer = find_customer(email)
    matches = check_password_hash(customer.password_hash if customer else _DUMMY_HASH, password)
    return customer if customer is not None and matches else None
