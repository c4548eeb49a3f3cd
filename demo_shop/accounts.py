"""Shopper accounts. Services flush; the caller commits."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from demo_shop.extensions import db
from demo_shop.models import Customer


class AccountError(Exception):
    """A sign-up the shop refuses, with a message for the shopper."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_customer(email: str) -> Customer | None:
    return db.session.scalar(select(Customer).where(Customer.email == normalise_email(email)))


def register(email: str, name: str, password: str) -> Customer:
    """A new account; AccountError when the address is taken (even by a parallel sign-up)."""
    taken = "There is already an account with this email address. Log in instead."
    if find_customer(email) is not None:
        raise AccountError(taken)
    customer = Customer(email=normalise_email(email), name=name.strip())
    customer.set_password(password)
    db.session.add(customer)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise AccountError(taken) from None
    return customer


def authenticate(email: str, password: str) -> Customer | None:
    customer = find_customer(email)
    if customer is None or not customer.check_password(password):
        return None
    return customer
