"""The payment as client apps see it: one shape for API answers, stored idempotent responses and
notifications, with the links to its subscription and its refunds."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import (
    Dispute,
    Payment,
    PaymentAttempt,
    PaymentStatus,
    Refund,
    Subscription,
    iso,
)
from app.models.subscription import committed_since_snapshot
from app.serializers.dispute import dispute_to_dict
from app.serializers.refund import refund_to_dict


def payment_to_dict(
    payment: Payment, *, with_history: bool = False, recc: RecurringLookup | None = None
) -> dict:
    data = {
        "id": payment.public_id,
        "object": "payment",
        "livemode": payment.livemode,
        "merchant_reference": payment.merchant_reference,
        "amount": payment.amount,
        "currency": payment.currency,
        "payment_type": payment.payment_type,
        "interval": payment.interval,
        "interval_count": payment.interval_count,
        "description": payment.description,
        "customer_email": payment.customer_email,
        "success_url": payment.success_url,
        "cancel_url": payment.cancel_url,
        "metadata": payment.metadata_ or {},
        "status": payment.status,
        "status_version": payment.status_version,
        "checkout_url": (
            payment.checkout_url if payment.status == PaymentStatus.INITIATED else None
        ),
        "psp": payment.psp,
        "psp_session_id": payment.psp_session_id,
        "expires_at": iso(payment.psp_expires_at),
        "failure_code": payment.failure_code,
        "failure_message": payment.failure_message,
        "failure_reason": payment.failure_reason,
        "payment_method": payment_method_to_dict(payment),
        "refunded_amount": payment.refunded_amount,
        "refund_state": payment.refund_state,  # null, "partial" or "full"
        "dispute_state": payment.dispute_state,  # null, "open", "lost" or "won"
        # RECC: the PayBridge subscription, its PSP id, and (renewals) the first payment.
        **(recc or RecurringLookup.load([payment])).fields(payment),
        "created_at": iso(payment.created_at),
        "updated_at": iso(payment.updated_at),
    }
    if with_history:
        data["attempts"] = [attempt_to_dict(a) for a in payment.attempts]
        data["refunds"] = refunds_of(payment)
        data["disputes"] = disputes_of(payment)
        data["status_history"] = [
            {
                "from": change.from_status,
                "to": change.to_status,
                "status_version": change.status_version,
                "source": change.source,
                "reason": change.reason,
                "psp_event_id": change.psp_event_id,
                "at": iso(change.created_at),
            }
            for change in payment.history
        ]
    return data


# The payment method object's fields (app/psp/base.py PspMethod), in the API's order.
PAYMENT_METHOD_FIELDS = (
    "type",
    "brand",
    "last4",
    "exp_month",
    "exp_year",
    "funding",
    "country",
    "wallet",
    "three_d_secure",
    "mandate",
    "mandate_reference",
)


def payment_method_to_dict(payment: Payment) -> dict | None:
    """How the shopper paid, once the PSP said (None before)."""
    kept = payment.payment_method
    if not isinstance(kept, dict):
        return None
    return {"object": "payment_method", **{name: kept.get(name) for name in PAYMENT_METHOD_FIELDS}}


def attempt_to_dict(attempt: PaymentAttempt) -> dict:
    return {
        "object": "payment_attempt",
        "attempted_at": iso(attempt.attempted_at),
        "outcome": attempt.outcome,
        "method_type": attempt.method_type,
        "card_brand": attempt.card_brand,
        "card_last4": attempt.card_last4,
        "decline_code": attempt.decline_code,
        "failure_code": attempt.failure_code,
        "failure_message": attempt.failure_message,
        "psp_charge_id": attempt.psp_charge_id,
    }


def payments_to_dicts(payments: list[Payment]) -> list[dict]:
    """A page of payments: their subscription links in two queries, not two per RECC row."""
    recc = RecurringLookup.load(payments)
    return [payment_to_dict(p, recc=recc) for p in payments]


class RecurringLookup:
    """Subscription ids and parent payment ids of RECC payments, fetched once for many."""

    def __init__(self, subscriptions: dict[int, tuple], parents: dict[int, str]) -> None:
        self.subscriptions = subscriptions  # first payment id -> (public id, PSP id)
        self.parents = parents  # payment id -> public id

    @classmethod
    def load(cls, payments: list[Payment], *, under_lock: bool = False) -> RecurringLookup:
        """`under_lock`: the caller holds these payments locked and freezes what it reads (a
        notification), so a subscription committed after this transaction's snapshot is looked
        up too (for a first payment and for a renewal)."""
        recc = [p for p in payments if p.payment_type == "RECC" and p.id is not None]
        if not recc:
            return cls({}, {})
        first_ids = {p.parent_payment_id or p.id for p in recc}
        parent_ids = {p.parent_payment_id for p in recc if p.parent_payment_id}
        with db.session.no_autoflush:
            subscriptions = {
                row.first_payment_id: (row.public_id, row.psp_subscription_id)
                for row in db.session.execute(
                    db.select(
                        Subscription.first_payment_id,
                        Subscription.public_id,
                        Subscription.psp_subscription_id,
                    ).where(Subscription.first_payment_id.in_(first_ids))
                )
            }
            parents = {}
            if parent_ids:
                parents = dict(
                    db.session.execute(
                        db.select(Payment.id, Payment.public_id).where(Payment.id.in_(parent_ids))
                    ).all()
                )
        if under_lock:
            for payment in recc:  # only those the plain read above missed
                first_id = payment.parent_payment_id or payment.id
                if first_id in subscriptions:
                    continue
                if payment.parent_payment_id is None:
                    found = committed_since_snapshot(db.session, payment)
                    if found is not None:
                        subscriptions[first_id] = (found.public_id, found.psp_subscription_id)
                    continue
                # A renewal exists only with its subscription, so the row does: a locking read
                # finds it (and locks only it) whatever the snapshot says.
                row = db.session.execute(
                    db.select(Subscription.public_id, Subscription.psp_subscription_id)
                    .where(Subscription.first_payment_id == first_id)
                    .with_for_update(read=True)
                ).first()
                if row is not None:
                    subscriptions[first_id] = tuple(row)
        return cls(subscriptions, parents)

    def fields(self, payment: Payment) -> dict:
        fields = {"subscription_id": None, "psp_subscription_id": None, "parent_payment_id": None}
        if payment.payment_type != "RECC" or payment.id is None:
            return fields
        found = self.subscriptions.get(payment.parent_payment_id or payment.id)
        if found is not None:
            fields["subscription_id"], fields["psp_subscription_id"] = found
        else:
            fields["psp_subscription_id"] = payment.psp_subscription_id
        if payment.parent_payment_id:
            fields["parent_payment_id"] = self.parents.get(payment.parent_payment_id)
        return fields


def disputes_of(payment: Payment) -> list[dict]:
    """The payment's disputes, oldest first (ix_disputes_payment); only a paid payment can
    have any (no query else)."""
    if payment.status != PaymentStatus.SUCCESS or payment.id is None:
        return []
    rows = db.session.scalars(
        select(Dispute).where(Dispute.payment_id == payment.id).order_by(Dispute.id)
    )
    return [dispute_to_dict(d, payment_public_id=payment.public_id) for d in rows]


def refunds_of(payment: Payment, *, under_lock: bool = False) -> list[dict]:
    """The payment's refunds, oldest first; only a SUCCESS payment can have any (no query else).

    `under_lock`: the caller holds the payment locked and freezes the list (a notification); a
    locking read then sees refunds another transaction finished after this one's snapshot."""
    if payment.status != PaymentStatus.SUCCESS or payment.id is None:
        return []
    query = select(Refund).where(Refund.payment_id == payment.id).order_by(Refund.id)
    if under_lock:  # every refund writer locks the payment first: this waits on no one
        query = query.with_for_update(read=True).execution_options(populate_existing=True)
    rows = db.session.scalars(query)
    return [
        refund_to_dict(r, payment_public_id=payment.public_id, livemode=payment.livemode)
        for r in rows
    ]
