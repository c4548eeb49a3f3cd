"""How a subscription follows its first payment: reactions to the payment core's signals,
connected in `app/wiring.py` (before the client is notified, so a notification names the
subscription its payment started)."""

from __future__ import annotations

from app.models import Payment, PaymentStatusChange, PaymentType
from app.subscriptions.service import ensure_for_first_payment, first_payment_status_changed


def record_subscription(payment: Payment) -> None:
    """`payments.signals.subscription_learned`: write the subscription row of a first payment."""
    ensure_for_first_payment(payment)


def follow_first_payment(payment: Payment, change: PaymentStatusChange) -> None:
    """`payments.signals.status_changed`: an incomplete subscription becomes active when its
    first payment succeeds, cancelled when it fails."""
    if (
        payment.payment_type == PaymentType.RECC
        and payment.parent_payment_id is None
        and payment.psp_subscription_id
        and payment.status_enum.is_final
    ):
        first_payment_status_changed(payment)
