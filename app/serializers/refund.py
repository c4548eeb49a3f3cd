"""The refund as client apps see it: in API answers, the payment's `refunds`, notifications."""

from __future__ import annotations

from app.models import Refund, iso


def refund_to_dict(
    refund: Refund, *, payment_public_id: str | None = None, livemode: bool | None = None
) -> dict:
    """`payment_public_id`, `livemode`: the refund's payment's, when the caller has them (a
    refund is of its payment's mode)."""
    return {
        "id": refund.public_id,
        "object": "refund",
        "livemode": refund.payment.livemode if livemode is None else livemode,
        "payment_id": payment_public_id or refund.payment.public_id,
        "amount": refund.amount,
        "currency": refund.currency,
        "status": refund.status,
        "reason": refund.reason,
        "failure_reason": refund.failure_reason,
        "psp": refund.psp,
        "psp_refund_id": refund.psp_refund_id,
        "source": refund.source,
        "created_at": iso(refund.created_at),
        "updated_at": iso(refund.updated_at),
        "completed_at": iso(refund.completed_at),
    }
