"""Applying what the PSP says (webhook events, retrieved sessions) to payments, exactly once.

Every fact takes the same path: find the payment its checkout session belongs to and lock the
row, cross-check that the session really is that payment's (ids, amount, currency), then move
the payment with the transitions the table allows. For an event, the event row is inserted in
the same transaction before anything else: its unique (psp, event_id) key makes a duplicate
wait for the first delivery's commit and then fail, so however many copies arrive at once, one
applies. Event row, status change, history and outbox notification commit together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError, NoResultFound, OperationalError

from app.db_retry import ATTEMPTS as LOCK_CONFLICT_ATTEMPTS
from app.db_retry import is_lock_conflict
from app.errors import PayBridgeError
from app.extensions import db
from app.metrics import PAYMENT_CONFLICTS, WEBHOOK_EVENTS
from app.models import Payment, PaymentConflict, PspEvent, utcnow
from app.payments.outcomes import failure_reason, is_backwards, target_for_event, target_for_session
from app.payments.state import lock_payment, lock_payment_by_public_id, transition
from app.payments.status import PaymentStatus, StatusSource
from app.psp.base import CheckoutSession, PspEventData

log = logging.getLogger(__name__)

HANDLED_TYPES = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
    }
)

# apply_session only: the PSP's state proves nothing new (still open, or already applied).
OUTCOME_UNCHANGED = "unchanged"
# Metrics only: a delivery of an event already stored.
OUTCOME_DUPLICATE = "duplicate"


EventHandler = Callable[[PspEventData, PspEvent, StatusSource], tuple[str, str | None]]
_extra_handlers: dict[str, EventHandler] = {}


def handled_event_types() -> list[str]:
    """Every event type PayBridge acts on: checkout events and the registered extras."""
    return sorted(HANDLED_TYPES | _extra_handlers.keys())


def register_event_handler(event_type: str, handler: EventHandler) -> None:
    """Handle another event type (refunds, subscriptions) inside process_event's transaction.

    The handler gets the verified event, its freshly inserted PspEvent row (set `payment_id`
    on it if it finds one) and the status source; it locks what it changes, flushes, never
    commits, and returns (outcome, detail).
    """
    _extra_handlers[event_type] = handler


@dataclass
class _Result:
    outcome: str
    detail: str | None = None
    payment: Payment | None = None
    conflict_kind: str | None = None  # a PaymentConflict row was added


def process_event(
    event: PspEventData, *, received_via: str = "webhook", psp: str | None = None
) -> PspEvent:
    """Store a verified PSP event once by its id and apply it; commit; return the stored row
    (detached from the session, its values as committed).

    A duplicate (even one arriving while the first copy is still being processed) returns the
    row stored first and changes nothing. Database errors propagate (the webhook answers 503).
    """
    psp_name = psp or current_app.config.get("PSP_NAME", "stripe")
    source = StatusSource.RECON if received_via == "recon" else StatusSource.WEBHOOK
    for attempt in range(1, LOCK_CONFLICT_ATTEMPTS + 1):
        try:
            return _process_once(event, received_via, psp_name, source)
        except OperationalError as exc:
            _rollback_quietly()
            if attempt < LOCK_CONFLICT_ATTEMPTS and is_lock_conflict(exc):
                log.info("psp event %s: lock conflict, retrying (%s)", event.id, attempt)
                continue
            raise
        except Exception:
            _rollback_quietly()  # release the row lock; nothing half-applied stays pending
            raise
    raise AssertionError("unreachable")


def apply_session(
    payment_id: int,
    session: CheckoutSession,
    *,
    source: StatusSource,
    psp_event_id: str | None = None,
) -> str:
    """Apply a retrieved checkout session's state to the payment (return page, recon); commit.

    Returns the outcome: applied, unchanged, ignored (would move it backwards), mismatch
    (the session is not this payment's) or conflict (paid after PayBridge failed it).
    """
    for attempt in range(1, LOCK_CONFLICT_ATTEMPTS + 1):
        try:
            try:
                payment = lock_payment(payment_id)
            except NoResultFound as exc:
                raise PayBridgeError("PAYMENT_NOT_FOUND") from exc
            result = _apply(
                payment,
                session,
                target_for_session(session),
                source=source,
                psp_event_id=psp_event_id,
                event_type=None,
            )
            db.session.commit()
        except OperationalError as exc:
            _rollback_quietly()
            if attempt < LOCK_CONFLICT_ATTEMPTS and is_lock_conflict(exc):
                continue
            raise
        except Exception:
            _rollback_quietly()
            raise
        _count_conflict(result)
        log.info(
            "session %s applied to payment %s (source=%s): %s%s",
            session.id,
            payment.public_id,
            source,
            result.outcome,
            f" ({result.detail})" if result.detail else "",
        )
        return result.outcome
    raise AssertionError("unreachable")


def _process_once(
    event: PspEventData, received_via: str, psp_name: str, source: StatusSource
) -> PspEvent:
    stored = _stored_event(psp_name, event.id)
    if stored is not None:
        return _duplicate(stored)
    session = event.session
    row = PspEvent(
        psp=psp_name,
        event_id=event.id,
        event_type=event.type[:100],
        psp_session_id=session.id if session else None,
        payload=event.raw,
        psp_created_at=event.created_at,
        received_at=utcnow(),
        received_via=received_via,
    )
    db.session.add(row)
    try:
        # Blocks while another transaction holds the same key uncommitted; fails once it commits.
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        stored = _stored_event(psp_name, event.id)
        if stored is None:
            raise
        return _duplicate(stored)

    result = _dispatch(event, row, source)
    row.outcome = result.outcome
    row.detail = (result.detail or "")[:500] or None
    if result.payment is not None:
        row.payment_id = result.payment.id
    _commit_keeping(row)

    _count_conflict(result)
    WEBHOOK_EVENTS.labels(_type_label(event.type), result.outcome).inc()
    log_level = logging.INFO if result.outcome == PspEvent.OUTCOME_APPLIED else logging.WARNING
    if result.outcome == PspEvent.OUTCOME_UNHANDLED:
        log_level = logging.INFO
    log.log(
        log_level,
        "psp event %s %s (session %s, via %s): %s%s",
        event.id,
        event.type,
        session.id if session else "-",
        received_via,
        result.outcome,
        f" ({result.detail})" if result.detail else "",
    )
    return row


# Built once: constructing these per event cost more CPU than running them (py-spy: the
# duplicate check alone was a seventh of a new event's web CPU, mostly building its WHERE).
_STORED_EVENT = (
    select(PspEvent)
    .where(PspEvent.psp == bindparam("psp"), PspEvent.event_id == bindparam("event_id"))
    .execution_options(populate_existing=True)
)
_SESSION_PAYMENT_ID = select(Payment.id).where(Payment.psp_session_id == bindparam("session_id"))


def _stored_event(psp_name: str, event_id: str) -> PspEvent | None:
    """The row this event was stored as, if it was (refreshed: it may be another's commit)."""
    return db.session.execute(
        _STORED_EVENT, {"psp": psp_name, "event_id": event_id}
    ).scalar_one_or_none()


def _duplicate(stored: PspEvent) -> PspEvent:
    WEBHOOK_EVENTS.labels(_type_label(stored.event_type), OUTCOME_DUPLICATE).inc()
    log.info("psp event %s already stored (outcome %s): ignored", stored.event_id, stored.outcome)
    _commit_keeping(stored)  # end the read; nothing changed
    return stored


def _commit_keeping(row: PspEvent) -> None:
    """Commit, leaving `row` detached with its values loaded for the caller.

    A commit expires every instance, so the caller's first read of `row.outcome` would be
    one more SELECT per event (a tenth of a webhook's statements).
    """
    db.session.flush()
    db.session.expunge(row)
    db.session.commit()


def _dispatch(event: PspEventData, row: PspEvent, source: StatusSource) -> _Result:
    handler = _extra_handlers.get(event.type)
    if handler is not None:
        outcome, detail = handler(event, row, source)
        return _Result(outcome, detail)
    if event.type not in HANDLED_TYPES:
        return _Result(PspEvent.OUTCOME_UNHANDLED, None)
    session = event.session
    if session is None:
        return _Result(PspEvent.OUTCOME_UNHANDLED, "the event carries no checkout session")
    payment = _lock_payment_for_session(session)
    if payment is None:
        return _Result(
            PspEvent.OUTCOME_UNKNOWN_SESSION,
            f"no payment has session {session.id} "
            f"(client_reference_id={session.client_reference_id!r})",
        )
    return _apply(
        payment,
        session,
        target_for_event(event.type, session),
        source=source,
        psp_event_id=event.id,
        event_type=event.type,
    )


def _lock_payment_for_session(session: CheckoutSession) -> Payment | None:
    """The payment the session belongs to, row-locked: by session id, else by our own id.

    A payment still CREATED (its registration answer was lost) has no session id yet; the
    session names it through client_reference_id and metadata. The lookup by session id is a
    plain read (a locking read of a missing key would gap-lock the index against the payment
    core recording a session id); if it misses because a registration committed meanwhile,
    the locking read by public id, which sees the latest rows, still finds the payment.
    """
    payment_id = (
        db.session.connection()
        .execute(_SESSION_PAYMENT_ID, {"session_id": session.id})
        .scalar_one_or_none()
    )
    if payment_id is not None:
        return lock_payment(payment_id)  # payments are never deleted: the id still names one
    claimed = session.client_reference_id or session.metadata.get("paybridge_payment_id")
    if claimed:
        return lock_payment_by_public_id(claimed)
    return None


def _apply(
    payment: Payment,
    session: CheckoutSession,
    target: PaymentStatus | None,
    *,
    source: StatusSource,
    psp_event_id: str | None,
    event_type: str | None,
) -> _Result:
    """The rules, on a locked payment. Flushes; the caller commits."""
    problem = _mismatch(payment, session)
    if problem:
        kind = PaymentConflict.KIND_MISMATCH
        added = _record_conflict(payment, kind, session, psp_event_id, problem)
        return _Result(PspEvent.OUTCOME_MISMATCH, problem, payment, kind if added else None)

    current = payment.status_enum
    _remember_psp_ids(payment, session)
    same_outcome = PspEvent.OUTCOME_IGNORED if event_type else OUTCOME_UNCHANGED
    if target is None:
        if current == PaymentStatus.CREATED:
            _record_registration(payment, session, source=source, psp_event_id=psp_event_id)
            return _Result(PspEvent.OUTCOME_APPLIED, "CREATED -> INITIATED", payment)
        return _Result(OUTCOME_UNCHANGED, f"session {session.status}: nothing to apply", payment)
    if target == current:
        return _Result(same_outcome, f"already {current}", payment)
    if current == PaymentStatus.FAILED and target == PaymentStatus.SUCCESS:
        kind = PaymentConflict.KIND_PAID_AFTER_FAILED
        detail = (
            f"session {session.id} was paid ({session.amount_total} {session.currency}) "
            f"after the payment was FAILED ({payment.failure_code}): refund or settle by hand"
        )
        added = _record_conflict(payment, kind, session, psp_event_id, detail)
        return _Result(PspEvent.OUTCOME_CONFLICT, detail, payment, kind if added else None)
    if is_backwards(current, target):
        return _Result(
            PspEvent.OUTCOME_IGNORED,
            f"{current} -> {target} would move the payment backwards",
            payment,
        )

    if current == PaymentStatus.CREATED:
        _record_registration(payment, session, source=source, psp_event_id=psp_event_id)
    failure_code = failure_message = None
    if target == PaymentStatus.FAILED:
        failure_code, failure_message = failure_reason(event_type, session)
    if event_type:
        reason = f"{event_type} (payment_status={session.payment_status})"
    else:
        reason = f"session {session.status}/{session.payment_status}"
    transition(
        payment,
        target,
        source=source,
        reason=reason,
        psp_event_id=psp_event_id,
        failure_code=failure_code,
        failure_message=failure_message,
    )
    return _Result(PspEvent.OUTCOME_APPLIED, f"{current} -> {target}", payment)


def _mismatch(payment: Payment, session: CheckoutSession) -> str | None:
    """Why this session cannot be this payment's, or None when every fact agrees."""
    problems = []
    if payment.psp_session_id and payment.psp_session_id != session.id:
        problems.append(f"the payment's session is {payment.psp_session_id}, not {session.id}")
    claims = (
        ("client_reference_id", session.client_reference_id),
        ("metadata.paybridge_payment_id", session.metadata.get("paybridge_payment_id")),
    )
    for label, value in claims:
        if value and value != payment.public_id:
            problems.append(f"{label} {value!r} is not {payment.public_id}")
    reference = session.metadata.get("merchant_reference")
    if reference and reference != payment.merchant_reference:
        problems.append(f"metadata.merchant_reference {reference!r} differs")
    if session.amount_total is None or session.amount_total != payment.amount:
        problems.append(f"amount {session.amount_total} is not {payment.amount}")
    if (session.currency or "").upper() != payment.currency.upper():
        problems.append(f"currency {session.currency} is not {payment.currency}")
    return "; ".join(problems) or None


def _remember_psp_ids(payment: Payment, session: CheckoutSession) -> None:
    if session.payment_intent_id and payment.psp_payment_intent_id != session.payment_intent_id:
        payment.psp_payment_intent_id = session.payment_intent_id
    if session.subscription_id and not payment.psp_subscription_id:
        payment.psp_subscription_id = session.subscription_id


def _record_registration(
    payment: Payment, session: CheckoutSession, *, source: StatusSource, psp_event_id: str | None
) -> None:
    """A CREATED payment whose session the PSP proves exists: registered after all."""
    payment.psp_session_id = session.id
    if session.url and not payment.checkout_url:
        payment.checkout_url = session.url
    if session.expires_at and not payment.psp_expires_at:
        payment.psp_expires_at = session.expires_at
    transition(
        payment,
        PaymentStatus.INITIATED,
        source=source,
        reason=f"registration confirmed by the PSP (session {session.id})",
        psp_event_id=psp_event_id,
    )


def _record_conflict(
    payment: Payment,
    kind: str,
    session: CheckoutSession,
    psp_event_id: str | None,
    detail: str,
) -> bool:
    """Add an open conflict unless the same one is already open (recon sees facts repeatedly).

    A locking read: this transaction's snapshot can predate the payment's lock, and a webhook
    and reconciliation reporting the same session may both get here; the one that waited must
    see the conflict the other committed. Conflicts are written only under their payment's
    lock, which the caller holds, so this waits on no one."""
    open_already = db.session.execute(
        select(PaymentConflict.id)
        .where(
            PaymentConflict.payment_id == payment.id,
            PaymentConflict.kind == kind,
            PaymentConflict.psp_session_id == session.id,
            PaymentConflict.resolved_at.is_(None),
        )
        .limit(1)
        .with_for_update()
    ).scalar_one_or_none()
    if open_already is not None:
        return False
    db.session.add(
        PaymentConflict(
            payment_id=payment.id,
            merchant_id=payment.merchant_id,
            kind=kind,
            psp_event_id=psp_event_id,
            psp_session_id=session.id,
            detail=detail,
        )
    )
    db.session.flush()
    log.warning("payment %s: conflict %s: %s", payment.public_id, kind, detail)
    return True


def _count_conflict(result: _Result) -> None:
    if result.conflict_kind:
        PAYMENT_CONFLICTS.labels(result.conflict_kind).inc()


def _type_label(event_type: str) -> str:
    """Bound the metric's label values to the types PayBridge knows."""
    if event_type in HANDLED_TYPES or event_type in _extra_handlers:
        return event_type
    return "other"


def _rollback_quietly() -> None:
    try:
        db.session.rollback()
    except Exception:  # the connection may be gone; the session is reset either way
        log.debug("rollback failed", exc_info=True)
