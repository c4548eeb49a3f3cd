"""Test and live data apart, as Stripe's dashboard keeps them: every dashboard read shows one
mode (Stripe's `livemode`). Payments, subscriptions and PSP events carry their own mode, and
refunds a copy of their payment's; notifications and conflicts have the mode of their payment."""

from __future__ import annotations

from sqlalchemy import Select, exists, select, true

from app.common.tenancy import scoped
from app.extensions import db
from app.models import ApiKey, Payment


def in_mode(stmt: Select, model, livemode: bool) -> Select:
    """`stmt` limited to `model`'s rows of one mode (through their payment when they have no
    mode of their own)."""
    if hasattr(model, "livemode"):
        return stmt.where(model.livemode == livemode)
    return stmt.join(Payment, Payment.id == model.payment_id).where(Payment.livemode == livemode)


def has_live_data(merchant_id: int | None) -> bool:
    """Whether a merchant (None: any) has live data to show: a live API key (revoked or not),
    or a live payment (rows marked live when a deployment adopts live mode; read from an index
    that leads with the merchant and the mode, or the mode: compared with `=`, since MariaDB
    reads no index for `livemode IS TRUE` and scanned a merchant's every payment)."""
    for model in (ApiKey, Payment):
        stmt = scoped(select(model.id).where(model.livemode == true()), model, merchant_id)
        if db.session.scalar(select(exists(stmt))):
            return True
    return False
