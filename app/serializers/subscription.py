"""The subscription as client apps see it (API v1)."""

from __future__ import annotations

from app.extensions import db
from app.models import Subscription, iso
from app.models.subscription import payments_of
from app.serializers.payment import payment_to_dict


def subscription_to_dict(subscription: Subscription, *, with_payments: bool = False) -> dict:
    first = subscription.first_payment
    data = {
        "id": subscription.public_id,
        "object": "subscription",
        "livemode": subscription.livemode,
        "status": subscription.status,
        "amount": subscription.amount,
        "currency": subscription.currency,
        "interval": subscription.interval,
        "interval_count": subscription.interval_count,
        "current_period_start": iso(subscription.current_period_start),
        "current_period_end": iso(subscription.current_period_end),
        "cancel_at_period_end": subscription.cancel_at_period_end,
        "cancelled_at": iso(subscription.cancelled_at),
        "ended_at": iso(subscription.ended_at),
        "first_payment_id": first.public_id,
        "merchant_reference": first.merchant_reference,
        "psp": subscription.psp,
        "psp_subscription_id": subscription.psp_subscription_id,
        "created_at": iso(subscription.created_at),
        "updated_at": iso(subscription.updated_at),
    }
    if with_payments:
        data["payments"] = [payment_to_dict(p) for p in payments_of(db.session, subscription)]
    return data
