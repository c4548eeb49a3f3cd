"""The shopping cart: a small dict kept in the shopper's session, priced from the catalogue.

Functions here take and return plain data; the views own the session.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select

from demo_shop.extensions import db
from demo_shop.models import Product

MAX_QUANTITY = 20
MAX_LINES = 30


class CartError(ValueError):
    """A cart change the shop refuses, with a message for the shopper."""


@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int

    @property
    def line_total(self) -> int:
        return self.product.price * self.quantity


@dataclass(frozen=True)
class PricedCart:
    lines: list[CartLine]
    token: str

    @property
    def count(self) -> int:
        return sum(line.quantity for line in self.lines)

    @property
    def currencies(self) -> set[str]:
        return {line.product.currency for line in self.lines}

    @property
    def currency(self) -> str | None:
        currencies = self.currencies
        return next(iter(currencies)) if len(currencies) == 1 else None

    @property
    def total(self) -> int:
        return sum(line.line_total for line in self.lines)

    @property
    def is_empty(self) -> bool:
        return not self.lines


def empty_cart() -> dict:
    return {"items": {}, "token": new_token()}


def new_token() -> str:
    return secrets.token_urlsafe(24)


def normalise(raw: object) -> dict:
    """Whatever the session holds, a well-formed cart: {"items": {"<id>": qty}, "token": str}."""
    if not isinstance(raw, dict):
        return empty_cart()
    items = {}
    for key, qty in (raw.get("items") or {}).items():
        if str(key).isdigit() and isinstance(qty, int) and 0 < qty <= MAX_QUANTITY:
            items[str(key)] = qty
    token = raw.get("token") if isinstance(raw.get("token"), str) else new_token()
    return {"items": items, "token": token}


def _changed(items: dict) -> dict:
    # A new token on every change: a checkout form rendered for the old contents is refused.
    return {"items": items, "token": new_token()}


def add(cart: dict, product_id: int, quantity: int) -> dict:
    """Add `quantity` of an active product; quantities add up to at most MAX_QUANTITY."""
    cart = normalise(cart)
    product = db.session.get(Product, product_id)
    if product is None or not product.active:
        raise CartError("That product is not available any more.")
    if quantity < 1:
        raise CartError("Choose a quantity of at least 1.")
    items = dict(cart["items"])
    if str(product_id) not in items and len(items) >= MAX_LINES:
        raise CartError(f"A cart holds at most {MAX_LINES} different products.")
    new_quantity = items.get(str(product_id), 0) + quantity
    if new_quantity > MAX_QUANTITY:
        raise CartError(f"You can buy at most {MAX_QUANTITY} of one print per order.")
    items[str(product_id)] = new_quantity
    return _changed(items)


def update(cart: dict, product_id: int, quantity: int) -> dict:
    """Set a line's quantity; 0 removes it."""
    cart = normalise(cart)
    items = dict(cart["items"])
    if str(product_id) not in items:
        raise CartError("That product is not in your cart.")
    if quantity < 0 or quantity > MAX_QUANTITY:
        raise CartError(f"Choose a quantity between 0 and {MAX_QUANTITY}.")
    if quantity == 0:
        items.pop(str(product_id))
    else:
        items[str(product_id)] = quantity
    return _changed(items)


def remove(cart: dict, product_id: int) -> dict:
    return update(cart, product_id, 0)


def price(cart: dict) -> PricedCart:
    """The cart with today's products and prices; products gone from the catalogue drop out."""
    cart = normalise(cart)
    ids = [int(key) for key in cart["items"]]
    products = {}
    if ids:
        rows = db.session.execute(
            select(Product).where(Product.id.in_(ids), Product.active.is_(True))
        ).scalars()
        products = {p.id: p for p in rows}
    lines = [
        CartLine(products[int(key)], qty)
        for key, qty in cart["items"].items()
        if int(key) in products
    ]
    lines.sort(key=lambda line: (line.product.position, line.product.id))
    return PricedCart(lines=lines, token=cart["token"])
