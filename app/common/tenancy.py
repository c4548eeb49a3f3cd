"""The tenancy rule for reads: a merchant's user sees its own rows, an operator (no merchant
given) sees every merchant's; another merchant's row is simply not found."""

from __future__ import annotations

from sqlalchemy import Select


def scoped(stmt: Select, model, merchant_id: int | None) -> Select:
    """`stmt` limited to `merchant_id`'s rows of `model`, or unchanged for an operator."""
    return stmt if merchant_id is None else stmt.where(model.merchant_id == merchant_id)
