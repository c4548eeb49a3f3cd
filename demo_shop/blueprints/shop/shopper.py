"""The shopper's side of the session: who is logged in, and the cart."""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from flask import abort, flash, g, redirect, request, session, url_for

from demo_shop import cart as carts
from demo_shop import orders
from demo_shop.extensions import db
from demo_shop.models import Customer, Order

SESSION_CUSTOMER = "customer_id"
SESSION_CART = "cart"


def current_customer() -> Customer | None:
    if "customer" not in g:
        customer_id = session.get(SESSION_CUSTOMER)
        customer = db.session.get(Customer, customer_id) if isinstance(customer_id, int) else None
        if customer is None:
            session.pop(SESSION_CUSTOMER, None)
        g.customer = customer
    return g.customer


def log_in(customer: Customer) -> None:
    session[SESSION_CUSTOMER] = customer.id


def log_out() -> None:
    session.pop(SESSION_CUSTOMER, None)


def login_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if current_customer() is None:
            flash("Please log in or create an account first.", "info")
            return redirect(url_for("shop.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped


def owned_order(order_id: int) -> Order:
    """The logged-in shopper's order, or 404 (someone else's order is as good as missing)."""
    order = orders.customer_order(current_customer().id, order_id)
    if order is None:
        abort(404, "No such order in your account.")
    return order


def safe_next(target: str | None) -> str | None:
    """A local path to go back to after logging in; anything else (other hosts) is dropped."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def session_cart() -> dict:
    return carts.normalise(session.get(SESSION_CART))


def save_cart(cart: dict) -> None:
    session[SESSION_CART] = cart
