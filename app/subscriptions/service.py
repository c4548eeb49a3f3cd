"""Subscriptions (RECC): recording them, their renewals as payments, and cancelling them.

A subscription starts as a RECC payment whose checkout the shopper completes: the moment the
PSP's subscription id lands on that first payment (whichever path brings it: webhook, return
page, reconciliation), the payment core announces it and the Subscription row is written in the
same transaction (`reactions.py`, connected in `app/wiring.py`); it then follows its first
payment to active or cancelled the same way.

Each later invoice charge becomes a payment of its own (type RECC, `parent_payment_id` = the
first payment, reference `<first reference>-r<N>`), created and moved to its final status
through the state machine, so it has its own history and its own signed notification. The
unique (psp_invoice_id, attempt) key of SubscriptionCharge records each charge once, whether it
arrives by webhook, twice, late, or through reconciliation. The first invoice
(billing_reason `subscription_create`) is the checkout's own money: it is linked to the first
payment, never recorded as a renewal.

A subscription's status moves only along the table in `app/models/subscription.py`
(`_move_to`). Functions here that change rows lock the subscription first (SELECT … FOR
UPDATE), flush and leave the commit to their caller, except `cancel_subscription`, which calls
the PSP and owns its transactions (no row lock is held during a PSP call).
"""

from __future__ import annotations

import logging
from datetime import datetime

from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.orm.attributes import set_committed_value

from app.common.locks import lock_row
from app.errors import PayBridgeError
from app.extensions import db
from app.models import (
    Payment,
    PaymentStatus,
    PaymentType,
    PspEvent,
    StatusSource,
    Subscription,
    SubscriptionCharge,
    SubscriptionStatus,
    utcnow,
)
from app.models.subscription import (
    SUBSCRIPTION_TRANSITIONS,
    committed_since_snapshot,
    new_subscription_id,
)
from app.payments import failure_reasons
from app.payments.state import learn_psp_ids, lock_payment, record_creation, transition
from app.psp import get_provider
from app.psp.base import (
    PspError,
    PspInvoice,
    PspNotFound,
    PspSubscription,
    PspUnavailable,
)
from app.subscriptions import signals

log = logging.getLogger(__name__)

SUBSCRIPTION_CHARGES = Counter(
    "paybridge_subscription_charges_total",
    "Subscription invoice charges recorded (first = the checkout's own invoice)",
    ["kind", "result", "source"],
)
SUBSCRIPTION_CANCELLATIONS = Counter(
    "paybridge_subscription_cancellations_total",
    "Subscriptions cancelled through the API",
    ["when"],
)

OUTCOME_UNKNOWN_SUBSCRIPTION = "unknown_subscription"
BILLING_REASON_CREATE = "subscription_create"
REFERENCE_MAX = 200
# What a renewal takes over from its subscription's first payment as it is.
RENEWAL_INHERITS = (
    "merchant_id",
    "livemode",  # a subscription's charges are all of its mode
    "payment_type",
    "description",
    "customer_email",
    "success_url",
    "cancel_url",
)

# The PSP's subscription statuses in PayBridge's four words; others leave the status alone.
PSP_STATUSES = {
    "incomplete": SubscriptionStatus.INCOMPLETE,
    "active": SubscriptionStatus.ACTIVE,
    "trialing": SubscriptionStatus.ACTIVE,
    "past_due": SubscriptionStatus.PAST_DUE,
    "unpaid": SubscriptionStatus.PAST_DUE,
    "canceled": SubscriptionStatus.CANCELLED,
    "incomplete_expired": SubscriptionStatus.CANCELLED,
}


# -- the row behind a first payment --------------------------------------------------------------


def ensure_for_first_payment(payment: Payment) -> Subscription | None:
    """The subscription of a first RECC payment that has a PSP subscription id; written (added
    to the session, not flushed) when missing. It never autoflushes: the payment it is called
    for may be half-way through a change."""
    session = db.session
    if (
        payment.payment_type != PaymentType.RECC.value
        or not payment.psp_subscription_id
        or payment.parent_payment_id is not None
    ):
        return None
    with session.no_autoflush:
        existing = session.execute(
            select(Subscription)
            .where(Subscription.psp_subscription_id == payment.psp_subscription_id)
            .with_for_update()
        ).scalar_one_or_none()
        if existing is not None:
            return existing
        for pending in session.new:
            if (
                isinstance(pending, Subscription)
                and pending.psp_subscription_id == payment.psp_subscription_id
            ):
                return pending
        subscription = Subscription(
            public_id=new_subscription_id(),
            merchant_id=payment.merchant_id,
            first_payment=payment,
            psp=payment.psp,
            livemode=payment.livemode,
            psp_subscription_id=payment.psp_subscription_id,
            status=_status_for_first_payment(payment.status, SubscriptionStatus.INCOMPLETE).value,
            interval=payment.interval or "month",
            interval_count=payment.interval_count or 1,
            amount=payment.amount,
            currency=payment.currency,
            cancel_at_period_end=False,
            created_at=utcnow(),
        )
        session.add(subscription)
    log.info(
        "subscription %s recorded for payment %s (PSP %s)",
        subscription.public_id,
        payment.public_id,
        payment.psp_subscription_id,
    )
    return subscription


def committed_for_first_payment(payment: Payment) -> Subscription | None:
    """The subscription of a first payment the caller holds locked, even one committed after
    this transaction's snapshot.

    A plain read sees the snapshot, which can predate the commit of the subscription another
    transaction recorded for this payment (its customer.subscription.* event raced the
    checkout's completion), while the payment row, read under its lock, already names the PSP
    subscription. Then a locking read by that id finds the committed row; as it exists, the
    read locks that one row and no gap. Never autoflushes.
    """
    session = db.session
    with session.no_autoflush:
        found = session.execute(
            select(Subscription).where(Subscription.first_payment_id == payment.id)
        ).scalar_one_or_none()
    return found if found is not None else committed_since_snapshot(session, payment)


def first_payment_status_changed(payment: Payment) -> None:
    """A first payment turned final: an incomplete subscription becomes active or cancelled."""
    session = db.session
    subscription = committed_for_first_payment(payment)
    # No subscription returns to incomplete, so a copy that has left it needs no second look.
    if subscription is None or subscription.status != SubscriptionStatus.INCOMPLETE:
        return
    if subscription not in session.dirty:  # dirty: this transaction wrote (and locked) it
        # The copy may be the snapshot's: a cancel committed since must not be overwritten.
        with session.no_autoflush:
            subscription = lock_subscription(subscription.id)
        if subscription.status != SubscriptionStatus.INCOMPLETE:
            return
    new_status = _status_for_first_payment(payment.status, subscription.status_enum)
    if _move_to(subscription, new_status) and new_status == SubscriptionStatus.CANCELLED:
        subscription.cancelled_at = subscription.cancelled_at or utcnow()


# What a move announces to client apps (one started; one fell behind; one ended).
_ANNOUNCED = {
    (SubscriptionStatus.INCOMPLETE, SubscriptionStatus.ACTIVE): "subscription.created",
    (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE): "subscription.past_due",
}


def _move_to(subscription: Subscription, target: SubscriptionStatus) -> bool:
    """The one way a subscription's status changes: along the table, or not at all."""
    before = subscription.status_enum
    if not SUBSCRIPTION_TRANSITIONS.allows(before, target):
        return False
    subscription.status = target.value
    subscription.updated_at = utcnow()
    news = _ANNOUNCED.get((before, target))
    if target == SubscriptionStatus.CANCELLED and before != target:
        news = "subscription.canceled"
    if news is not None:
        signals.changed.send(subscription, subscription.first_payment, news)
    return True


def _status_for_first_payment(
    payment_status: str, current: SubscriptionStatus
) -> SubscriptionStatus:
    if payment_status == PaymentStatus.SUCCESS:
        return SubscriptionStatus.ACTIVE
    if payment_status == PaymentStatus.FAILED:
        # The checkout's money never came: the PSP lets such a subscription expire.
        return SubscriptionStatus.CANCELLED
    return current


# -- finding and locking -----------------------------------------------------------------------


def lock_subscription(subscription_id: int) -> Subscription:
    """The subscription with a row lock held until the caller commits."""
    return lock_row(Subscription, subscription_id)


def _lock_by_psp_id(psp_subscription_id: str) -> Subscription | None:
    """Found by a plain read, then locked by primary key: a locking read of a missing key
    would gap-lock the index against the flush hook inserting that very subscription."""
    found = db.session.execute(
        select(Subscription.id).where(Subscription.psp_subscription_id == psp_subscription_id)
    ).scalar_one_or_none()
    return lock_subscription(found) if found is not None else None


def owner_mode(
    psp_subscription_id: str | None, metadata: dict[str, str]
) -> tuple[bool, int] | None:
    """(livemode, first payment id) of the subscription `locate` would find, by plain reads
    that lock and change nothing: an event of the other mode must not even teach a payment its
    PSP subscription id."""
    if not psp_subscription_id:
        return None
    found = db.session.execute(
        select(Subscription.livemode, Subscription.first_payment_id).where(
            Subscription.psp_subscription_id == psp_subscription_id
        )
    ).first()
    if found is None and metadata.get("paybridge_payment_id"):
        found = db.session.execute(
            select(Payment.livemode, Payment.id).where(
                Payment.public_id == metadata["paybridge_payment_id"]
            )
        ).first()
    return (found[0], found[1]) if found is not None else None


def locate(psp_subscription_id: str | None, metadata: dict[str, str]) -> Subscription | None:
    """The subscription the PSP's object is about, row-locked.

    By its PSP id; else (its events can come before the checkout's completion) through the
    first payment named in the metadata PayBridge gave the PSP, which then gets the PSP id and
    with it its subscription row. None when neither leads anywhere trustworthy.
    """
    if not psp_subscription_id:
        return None
    subscription = _lock_by_psp_id(psp_subscription_id)
    if subscription is not None:
        return subscription
    claimed = metadata.get("paybridge_payment_id")
    if not claimed:
        return None
    payment_id = db.session.execute(
        select(Payment.id).where(Payment.public_id == claimed)
    ).scalar_one_or_none()
    if payment_id is None:
        return None
    payment = lock_payment(payment_id)
    reference = metadata.get("merchant_reference")
    if (
        payment.payment_type != PaymentType.RECC.value
        or payment.parent_payment_id is not None
        or (reference and reference != payment.merchant_reference)
        or (payment.psp_subscription_id and payment.psp_subscription_id != psp_subscription_id)
    ):
        log.warning(
            "PSP subscription %s claims payment %s, which does not match it",
            psp_subscription_id,
            claimed,
        )
        return None
    learn_psp_ids(payment, subscription_id=psp_subscription_id)  # announced: the row is written
    # Under the payment's lock a locking read sees the latest rows, including a subscription
    # another transaction committed after this one's snapshot (or writes a missing one).
    subscription = ensure_for_first_payment(payment)
    db.session.flush()
    subscription = lock_subscription(subscription.id)
    if subscription.first_payment_id == payment.id:
        # The session holds an unchanged row only weakly: once `payment` is out of scope, a
        # lazy load of first_payment would read it again, unlocked, from the older snapshot.
        set_committed_value(subscription, "first_payment", payment)
    return subscription


# -- invoices: renewals -------------------------------------------------------------------------


def apply_invoice(
    invoice: PspInvoice,
    *,
    paid: bool,
    source: StatusSource,
    psp_event_id: str | None = None,
) -> tuple[str, str | None, Payment | None]:
    """Record one invoice charge (paid, or a failed attempt) once: (outcome, detail, payment).

    A renewal becomes a new RECC payment, SUCCESS or FAILED through the state machine; the
    first invoice is linked to the first payment. Flushes; the caller commits.
    """
    subscription = locate(invoice.subscription_id, invoice.metadata)
    if subscription is None:
        return (
            OUTCOME_UNKNOWN_SUBSCRIPTION,
            f"no subscription {invoice.subscription_id!r} (invoice {invoice.id})",
            None,
        )
    attempt = (
        SubscriptionCharge.ATTEMPT_PAID
        if paid
        else SubscriptionCharge.failed_attempt(max(invoice.attempt_count, 1))
    )
    existing = db.session.execute(
        select(SubscriptionCharge)
        .where(
            SubscriptionCharge.psp_invoice_id == invoice.id,
            SubscriptionCharge.attempt == attempt,
        )
        .with_for_update()
    ).scalar_one_or_none()
    if existing is not None:
        if paid and invoice.payment_intent_id and not existing.payment.psp_payment_intent_id:
            record_payment_intent(existing.payment_id, invoice.payment_intent_id)
        return (
            PspEvent.OUTCOME_IGNORED,
            f"invoice {invoice.id} ({attempt}) already recorded",
            existing.payment,
        )
    problem = _invoice_mismatch(subscription, invoice)
    if problem:
        log.warning("subscription %s: %s", subscription.public_id, problem)
        return PspEvent.OUTCOME_MISMATCH, problem, subscription.first_payment

    if invoice.billing_reason == BILLING_REASON_CREATE:
        return _first_invoice(subscription, invoice, attempt, paid, source, psp_event_id)

    amount = invoice.amount_paid if paid else invoice.amount_due
    if amount <= 0:
        return PspEvent.OUTCOME_IGNORED, f"invoice {invoice.id} charges nothing", None
    first = subscription.first_payment
    payment = _new_renewal(subscription, first, invoice, amount, source)
    period = _period_text(invoice)
    transition(
        payment,
        PaymentStatus.INITIATED,
        source=source,
        reason=f"renewal {period} billed by the PSP (invoice {invoice.id})",
        psp_event_id=psp_event_id,
    )
    if paid:
        transition(
            payment,
            PaymentStatus.SUCCESS,
            source=source,
            reason=f"invoice {invoice.id} paid",
            psp_event_id=psp_event_id,
        )
    else:
        message = f"renewal charge failed (invoice {invoice.id}, attempt {invoice.attempt_count})"
        transition(
            payment,
            PaymentStatus.FAILED,
            source=source,
            reason=message,
            psp_event_id=psp_event_id,
            failure_code="renewal_payment_failed",
            failure_message=message,
            failure_reason=failure_reasons.DECLINED,  # the saved card did not pay
        )
    _add_charge(subscription, payment, invoice, attempt, source, psp_event_id)
    _after_charge(subscription, invoice, paid)
    if paid:
        signals.changed.send(subscription, payment, "subscription.renewed")
    db.session.flush()
    SUBSCRIPTION_CHARGES.labels("renewal", "paid" if paid else "failed", source.value).inc()
    log.info(
        "subscription %s: renewal %s %s (invoice %s, %s %s)",
        subscription.public_id,
        payment.public_id,
        payment.status,
        invoice.id,
        amount,
        payment.currency,
    )
    return PspEvent.OUTCOME_APPLIED, f"renewal {payment.public_id} {payment.status}", payment


def _first_invoice(
    subscription: Subscription,
    invoice: PspInvoice,
    attempt: str,
    paid: bool,
    source: StatusSource,
    psp_event_id: str | None,
) -> tuple[str, str | None, Payment | None]:
    """The checkout's own invoice: the first payment's money, whose status the checkout
    session's events decide. Only the link and the period are recorded."""
    first = subscription.first_payment
    if not paid:
        return (
            PspEvent.OUTCOME_IGNORED,
            "the first invoice's failure reaches the first payment through its checkout session",
            first,
        )
    _add_charge(subscription, first, invoice, attempt, source, psp_event_id)
    _after_charge(subscription, invoice, paid)
    db.session.flush()
    SUBSCRIPTION_CHARGES.labels("first", "paid", source.value).inc()
    return (
        PspEvent.OUTCOME_APPLIED,
        f"first invoice {invoice.id} linked to {first.public_id}",
        first,
    )


def _invoice_mismatch(subscription: Subscription, invoice: PspInvoice) -> str | None:
    if invoice.currency and invoice.currency.upper() != subscription.currency.upper():
        return f"invoice {invoice.id} is in {invoice.currency}, the subscription in " + (
            subscription.currency
        )
    claimed = invoice.metadata.get("paybridge_payment_id")
    if claimed and claimed != subscription.first_payment.public_id:
        return f"invoice {invoice.id} names payment {claimed}, not the subscription's first"
    return None


def _new_renewal(
    subscription: Subscription,
    first: Payment,
    invoice: PspInvoice,
    amount: int,
    source: StatusSource,
) -> Payment:
    number = (
        db.session.execute(
            select(SubscriptionCharge.id)
            .where(
                SubscriptionCharge.subscription_id == subscription.id,
                SubscriptionCharge.payment_id != first.id,
            )
            .with_for_update()
        )
        .scalars()
        .all()
    )
    payment = Payment(
        **{name: getattr(first, name) for name in RENEWAL_INHERITS},
        metadata_=dict(first.metadata_ or {}),
        merchant_reference=_renewal_reference(first, len(number) + 1, invoice.id),
        amount=amount,
        currency=(invoice.currency or subscription.currency).upper(),
        interval=subscription.interval,
        interval_count=subscription.interval_count,
        psp=subscription.psp,
        # Not the PSP subscription id: code that looks a payment's intent up through its
        # subscription would find the first invoice's, i.e. another charge. A renewal's own
        # intent comes with the invoice, or later (learn_payment_intent, reconciliation).
        psp_payment_intent_id=invoice.payment_intent_id,
        parent_payment_id=first.id,
        created_at=utcnow(),
    )
    db.session.add(payment)
    record_creation(payment, source=source)
    db.session.flush()
    return payment


def _renewal_reference(first: Payment, number: int, invoice_id: str) -> str:
    """`<first reference>-r<N>`, unique per merchant (a reference the merchant already used
    for something else gets the invoice id added)."""
    for suffix in (f"-r{number}", f"-r{number}-{invoice_id}"):
        reference = first.merchant_reference[: REFERENCE_MAX - len(suffix)] + suffix
        taken = db.session.execute(
            select(Payment.id)
            .where(
                Payment.merchant_id == first.merchant_id,
                Payment.livemode == first.livemode,
                Payment.merchant_reference == reference,
            )
            .with_for_update()
        ).scalar_one_or_none()
        if taken is None:
            return reference
    raise PayBridgeError(
        "INTERNAL_ERROR", f"no free merchant_reference for the renewal of invoice {invoice_id}"
    )


def _add_charge(
    subscription: Subscription,
    payment: Payment,
    invoice: PspInvoice,
    attempt: str,
    source: StatusSource,
    psp_event_id: str | None,
) -> None:
    db.session.add(
        SubscriptionCharge(
            subscription_id=subscription.id,
            payment_id=payment.id,
            psp_invoice_id=invoice.id,
            attempt=attempt,
            billing_reason=(invoice.billing_reason or "")[:40] or None,
            period_start=invoice.period_start,
            period_end=invoice.period_end,
            psp_event_id=psp_event_id,
            source=source.value,
            created_at=utcnow(),
        )
    )


def _after_charge(subscription: Subscription, invoice: PspInvoice, paid: bool) -> None:
    """The subscription after a charge of the current (or a newer) period: its period, and
    active or past due. An older invoice's late news changes neither."""
    now = utcnow()
    current_end = subscription.current_period_end
    is_current = (
        invoice.period_end is None or current_end is None or invoice.period_end >= current_end
    )
    if not is_current:
        return
    if invoice.period_end is not None:
        subscription.current_period_start = invoice.period_start
        subscription.current_period_end = invoice.period_end
    _move_to(subscription, SubscriptionStatus.ACTIVE if paid else SubscriptionStatus.PAST_DUE)
    subscription.updated_at = now


def _period_text(invoice: PspInvoice) -> str:
    if invoice.period_start and invoice.period_end:
        return f"{invoice.period_start:%Y-%m-%d} to {invoice.period_end:%Y-%m-%d}"
    return "of the next period"


def paid_renewals_without_intent(limit: int) -> list[int]:
    """Paid renewals whose own payment intent PayBridge has not learned yet, oldest first."""
    return list(
        db.session.scalars(
            select(Payment.id)
            .where(
                Payment.parent_payment_id.is_not(None),
                Payment.status == PaymentStatus.SUCCESS,
                Payment.psp_payment_intent_id.is_(None),
            )
            .order_by(Payment.id)
            .limit(limit)
        )
    )


def learn_payment_intent(payment_id: int) -> str | None:
    """A renewal's own payment intent, from its invoice at the PSP (invoice events do not carry
    it): needed to refund that charge. Calls the PSP outside any transaction; commits."""
    payment = db.session.get(Payment, payment_id, populate_existing=True)
    if payment is None or payment.psp_payment_intent_id or payment.parent_payment_id is None:
        db.session.commit()
        return payment.psp_payment_intent_id if payment is not None else None
    invoice_id = db.session.execute(
        select(SubscriptionCharge.psp_invoice_id).where(SubscriptionCharge.payment_id == payment_id)
    ).scalar_one_or_none()
    psp, livemode = payment.psp, payment.livemode
    db.session.commit()
    if invoice_id is None:
        return None
    invoice = get_provider(psp, livemode=livemode).retrieve_invoice(invoice_id)
    if invoice.payment_intent_id:
        record_payment_intent(payment_id, invoice.payment_intent_id)
        db.session.commit()
    return invoice.payment_intent_id


def record_payment_intent(payment_id: int, payment_intent_id: str) -> None:
    """Remember the intent that made this charge (once; the caller commits)."""
    payment = lock_payment(payment_id)
    if not payment.psp_payment_intent_id:
        learn_psp_ids(payment, payment_intent_id=payment_intent_id)
        log.info("payment %s: payment intent %s", payment.public_id, payment_intent_id)


# -- the subscription's own state --------------------------------------------------------------


def apply_psp_subscription(
    state: PspSubscription,
    *,
    observed_at: datetime | None,
    ended: bool = False,
) -> tuple[str, str | None, Subscription | None]:
    """Take the PSP's view of the subscription (an event's, or a retrieved one): status,
    period, cancellation. An event older than the last one applied changes nothing; a
    cancelled subscription never comes back. Flushes; the caller commits."""
    subscription = locate(state.id, state.metadata)
    if subscription is None:
        return OUTCOME_UNKNOWN_SUBSCRIPTION, f"no subscription {state.id!r}", None
    if (
        observed_at is not None
        and subscription.psp_synced_at is not None
        and observed_at < subscription.psp_synced_at
    ):
        return PspEvent.OUTCOME_IGNORED, "older than the state already applied", subscription
    changes = _sync(subscription, state, ended=ended)
    if observed_at is not None:
        subscription.psp_synced_at = max(observed_at, subscription.psp_synced_at or observed_at)
    db.session.flush()
    if not changes:
        # Consistent with what PayBridge has: taken, with nothing to change (not "ignored",
        # which means stale or out of order).
        return PspEvent.OUTCOME_APPLIED, "already in this state", subscription
    return PspEvent.OUTCOME_APPLIED, "; ".join(changes), subscription


def _sync(subscription: Subscription, state: PspSubscription, *, ended: bool) -> list[str]:
    changes: list[str] = []

    def put(attribute: str, value) -> None:
        if getattr(subscription, attribute) != value:
            changes.append(f"{attribute}: {getattr(subscription, attribute)} -> {value}")
            setattr(subscription, attribute, value)

    cancelled = subscription.status == SubscriptionStatus.CANCELLED
    target = SubscriptionStatus.CANCELLED if ended else PSP_STATUSES.get(state.status)
    before = subscription.status
    # The table keeps a started subscription from going back to incomplete, and a cancelled
    # one from coming back.
    if target is not None and _move_to(subscription, target):
        changes.append(f"status: {before} -> {target}")
    if not cancelled or target == SubscriptionStatus.CANCELLED:
        put("cancel_at_period_end", bool(state.cancel_at_period_end))
        if state.current_period_end is not None:
            put("current_period_start", state.current_period_start)
            put("current_period_end", state.current_period_end)
    if subscription.status == SubscriptionStatus.CANCELLED:
        put("cancelled_at", subscription.cancelled_at or state.canceled_at or utcnow())
        if state.ended_at is not None or ended:
            put("ended_at", subscription.ended_at or state.ended_at or utcnow())
    elif state.cancel_at_period_end and state.canceled_at is not None:
        # Cancelled at period end: requested now, ends at current_period_end.
        put("cancelled_at", state.canceled_at)
    elif not state.cancel_at_period_end:
        put("cancelled_at", None)
    if changes:
        subscription.updated_at = utcnow()
    return changes


# -- API: read and cancel ---------------------------------------------------------------------


def get_subscription(
    merchant_id: int, public_id: str, *, livemode: bool | None = None
) -> Subscription:
    """One of the merchant's subscriptions; someone else's answers SUBSCRIPTION_NOT_FOUND, and
    so does one of the other mode when `livemode` is given."""
    stmt = select(Subscription).where(
        Subscription.public_id == public_id, Subscription.merchant_id == merchant_id
    )
    if livemode is not None:
        stmt = stmt.where(Subscription.livemode == livemode)
    subscription = db.session.execute(stmt).scalar_one_or_none()
    if subscription is None:
        raise PayBridgeError("SUBSCRIPTION_NOT_FOUND", param="id")
    return subscription


def cancel_subscription(subscription_id: int, *, at_period_end: bool) -> Subscription:
    """Cancel at the PSP (now, or at the end of the paid period), then record what it answers;
    commits. Cancelling a cancelled subscription answers it as it is."""
    subscription = db.session.get(Subscription, subscription_id, populate_existing=True)
    if subscription is None:
        raise PayBridgeError("SUBSCRIPTION_NOT_FOUND", param="id")
    if subscription.status == SubscriptionStatus.CANCELLED:
        db.session.commit()
        return subscription
    psp_id, psp, public_id = (
        subscription.psp_subscription_id,
        subscription.psp,
        subscription.public_id,
    )
    livemode = subscription.livemode
    db.session.commit()  # no transaction stays open while the PSP is called

    provider = get_provider(psp, livemode=livemode)
    try:
        try:
            state = provider.cancel_subscription(psp_id, at_period_end=at_period_end)
        except PspUnavailable:
            raise
        except PspError as exc:
            # Perhaps it ended at the PSP already (a lost event): its truth decides.
            log.warning("subscription %s: PSP refused to cancel: %s", public_id, exc)
            state = provider.retrieve_subscription(psp_id)
            if state.status != "canceled":
                raise PayBridgeError(
                    "PSP_REJECTED",
                    f"The payment service provider refused to cancel the subscription: "
                    f"{exc.message}"[:1000],
                    details={"subscription_id": public_id, "psp_code": exc.code},
                ) from exc
    except PspUnavailable as exc:
        raise PayBridgeError(
            "PSP_UNAVAILABLE", details={"subscription_id": public_id}, headers={"Retry-After": "2"}
        ) from exc
    except PspNotFound as exc:
        raise PayBridgeError(
            "PSP_ERROR",
            "The payment service provider does not know this subscription.",
            details={"subscription_id": public_id},
        ) from exc
    except PspError as exc:
        raise PayBridgeError("PSP_ERROR", details={"subscription_id": public_id}) from exc

    subscription = lock_subscription(subscription_id)
    _sync(subscription, state, ended=state.status == "canceled")
    db.session.commit()
    SUBSCRIPTION_CANCELLATIONS.labels("period_end" if at_period_end else "now").inc()
    log.info(
        "subscription %s cancelled %s (PSP status %s)",
        public_id,
        "at period end" if at_period_end else "now",
        state.status,
    )
    return subscription
