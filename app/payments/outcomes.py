"""What a PSP fact means for a payment: the one mapping used by webhooks, returns and recon.

`target_for_session` reads a checkout session's state; `target_for_event` reads an event type
(an async failure leaves the session complete/unpaid, so only the event or the payment intent
tells it apart from a payment still processing).
"""

from __future__ import annotations

from app.models import PaymentStatus
from app.psp.base import CheckoutSession

# How far along a payment is; a move to a lower rank is "backwards" (a late, stale event).
PROGRESS_RANK = {
    PaymentStatus.CREATED: 0,
    PaymentStatus.INITIATED: 1,
    PaymentStatus.PENDING: 2,
    PaymentStatus.SUCCESS: 3,
    PaymentStatus.FAILED: 3,
}


# Payment intent statuses that mean a completed-but-unpaid checkout's payment failed.
FAILED_INTENT_STATUSES = frozenset({"requires_payment_method", "canceled"})

# Payment methods whose charge settles days after checkout (bank debits, vouchers): a PENDING
# payment paid with one is not late after minutes as a card's would be (reconciliation).
DELAYED_METHOD_TYPES = frozenset(
    {
        "sepa_debit",
        "bacs_debit",
        "au_becs_debit",
        "acss_debit",
        "us_bank_account",
        "sofort",
        "boleto",
        "oxxo",
        "konbini",
        "customer_balance",
    }
)


def settles_late(status: str, method_type: str | None) -> bool:
    """A payment still processing a delayed method's debit: it waits days, not minutes."""
    return status == PaymentStatus.PENDING and method_type in DELAYED_METHOD_TYPES


EVENT_TARGETS = {
    "checkout.session.async_payment_succeeded": PaymentStatus.SUCCESS,
    "checkout.session.async_payment_failed": PaymentStatus.FAILED,
    "checkout.session.expired": PaymentStatus.FAILED,
}


def target_for_session(session: CheckoutSession) -> PaymentStatus | None:
    """The status the session's state proves, or None while the checkout is still open."""
    if session.status == "expired":
        return PaymentStatus.FAILED
    if session.status != "complete":
        return None
    if session.payment_status in ("paid", "no_payment_required"):
        return PaymentStatus.SUCCESS
    if session.payment_intent_status in FAILED_INTENT_STATUSES:
        return PaymentStatus.FAILED
    return PaymentStatus.PENDING


def target_for_event(event_type: str, session: CheckoutSession) -> PaymentStatus | None:
    """The status a checkout.session.* event proves (None for types that prove nothing)."""
    if event_type == "checkout.session.completed":
        if session.payment_status in ("paid", "no_payment_required"):
            return PaymentStatus.SUCCESS
        return PaymentStatus.PENDING
    return EVENT_TARGETS.get(event_type)


def failure_reason(event_type: str | None, session: CheckoutSession) -> tuple[str, str]:
    """(failure_code, human reason) for a FAILED outcome."""
    if session.status == "expired" or event_type == "checkout.session.expired":
        return "expired", "checkout session expired"
    return session.failure_code or "payment_failed", "payment failed at the PSP"


def is_backwards(current: PaymentStatus, target: PaymentStatus) -> bool:
    """A stale or out-of-order fact: applying it would undo progress already recorded."""
    return PROGRESS_RANK[target] < PROGRESS_RANK[current] or (
        current.is_final and target != current
    )
