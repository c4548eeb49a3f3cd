"""Disputes: recording what the PSP reports, the lists, and the merchant's two answers.

`apply_psp_dispute` is the only code that writes a dispute's state; it runs under the payment's
row lock (taken first, as every change of a payment's records does) and the dispute's. The
answers (`submit_evidence`, `accept_dispute`) call the PSP with no transaction open, then record
what it answered; the PSP's own event of the same change then finds nothing new.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.common import cursors
from app.common.locks import lock_row
from app.disputes import signals
from app.errors import PayBridgeError
from app.extensions import db
from app.models import Dispute, DisputeState, Payment, PaymentAttempt, utcnow
from app.models.dispute import CLOSED_STATUSES, NEEDS_RESPONSE_STATUSES
from app.payments.state import lock_payment
from app.psp import PspError, get_provider
from app.psp.base import PaymentProvider, PspDispute, PspNotFound, PspUnavailable

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Stripe's limit of a text evidence field (`uncategorized_text`).
MAX_EVIDENCE_TEXT = 20_000
# Dispute statuses a client may filter by (Stripe's words).
STATUSES = (
    "needs_response", "under_review", "won", "lost", "warning_needs_response",
    "warning_under_review", "warning_closed", "prevented",
)  # fmt: skip
# The PSP's event types that mean the money left or came back (kept on the record).
FUNDS_WITHDRAWN = "charge.dispute.funds_withdrawn"
FUNDS_REINSTATED = "charge.dispute.funds_reinstated"


# -- recording what the PSP says -------------------------------------------------------------


def dispute_of_psp_id(psp_dispute_id: str, *, locking: bool = False) -> Dispute | None:
    """`locking`: read fresh under a row lock (another transaction may have changed it since
    this session last read it)."""
    stmt = select(Dispute).where(Dispute.psp_dispute_id == psp_dispute_id)
    if locking:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return db.session.scalar(stmt)


def payment_of_intent(payment_intent_id: str | None) -> int | None:
    if not payment_intent_id:
        return None
    return db.session.scalar(
        select(Payment.id)
        .where(Payment.psp_payment_intent_id == payment_intent_id)
        .order_by(Payment.id)
        .limit(1)
    )


def payment_of_charge(charge_id: str | None) -> int | None:
    """The payment one of whose attempts is this PSP charge (uq_payment_attempts_psp_charge_id:
    one indexed read), None when no attempt of it was recorded."""
    if not charge_id:
        return None
    return db.session.scalar(
        select(PaymentAttempt.payment_id).where(PaymentAttempt.psp_charge_id == charge_id)
    )


def apply_psp_dispute(
    payment: Payment,
    dispute: Dispute | None,
    reported: PspDispute,
    *,
    at: datetime | None,
    funds: str | None = None,
) -> tuple[Dispute, str | None]:
    """Record the PSP's dispute on the locked payment (new, or the locked `dispute`); flushes.

    `at`: the PSP's time of this state (an event's), None for an answer just received; a state
    older than one applied already changes nothing but the funds. `funds`: the event type when
    it says the money left or came back. Returns the dispute and the notification it caused
    (dispute.created / .updated / .closed), or None when nothing a client sees changed.
    """
    now = utcnow()
    if dispute is None:
        dispute = Dispute(
            payment_id=payment.id,
            merchant_id=payment.merchant_id,
            livemode=payment.livemode,
            psp=payment.psp,
            psp_dispute_id=reported.id,
            has_evidence=False,
            submission_count=0,
            created_at=reported.created_at or now,
            updated_at=now,
        )
        _copy_state(dispute, reported)
        dispute.psp_updated_at = at
        _note_funds(dispute, funds, at or now)
        db.session.add(dispute)
        db.session.flush()
        _mark_payment(payment)
        _announce(payment, dispute, "dispute.created")
        if dispute.is_closed:  # first heard of once decided (events come in any order)
            dispute.closed_at = now
            _announce(payment, dispute, "dispute.closed")
        return dispute, "dispute.created"

    before = _visible_state(dispute)
    older = at is not None and dispute.psp_updated_at is not None and at < dispute.psp_updated_at
    # Stripe stamps events in whole seconds: one of the same second that would take the dispute
    # back a stage (under review → needs response, after the merchant's answer) is a retried
    # earlier event, not news.
    back = (
        at is not None
        and dispute.psp_updated_at is not None
        and at <= dispute.psp_updated_at
        and _stage(reported.status) < _stage(dispute.status)
    )
    # A decided dispute stays decided: a late event of its open days changes nothing.
    if not (older or back) and not (dispute.is_closed and reported.status not in CLOSED_STATUSES):
        _copy_state(dispute, reported)
        if at is not None:
            dispute.psp_updated_at = at
    _note_funds(dispute, funds, at or now)
    if _visible_state(dispute) == before:
        return dispute, None
    dispute.updated_at = now
    kind = "dispute.updated"
    if dispute.is_closed and before[0] not in CLOSED_STATUSES:
        dispute.closed_at = now
        kind = "dispute.closed"
    db.session.flush()
    _mark_payment(payment)
    _announce(payment, dispute, kind)
    return dispute, kind


def _mark_payment(payment: Payment) -> None:
    """Keep the locked payment's dispute state (the list's badge and filter) in step with its
    disputes, flushed."""
    statuses = db.session.scalars(select(Dispute.status).where(Dispute.payment_id == payment.id))
    state = DisputeState.of(list(statuses))
    payment.dispute_state = state.value if state else None


def _copy_state(dispute: Dispute, reported: PspDispute) -> None:
    dispute.psp_charge_id = reported.charge_id or dispute.psp_charge_id
    dispute.amount = reported.amount
    dispute.currency = (reported.currency or dispute.currency or "").upper()
    dispute.reason = reported.reason
    dispute.status = reported.status
    dispute.evidence_due_by = reported.evidence_due_by
    dispute.has_evidence = reported.has_evidence
    dispute.submission_count = reported.submission_count
    # The PSP's text evidence is the truth (a lost answer's text, or one given at the PSP).
    dispute.evidence_text = reported.evidence_text or dispute.evidence_text


def _note_funds(dispute: Dispute, funds: str | None, at: datetime) -> None:
    if funds == FUNDS_WITHDRAWN and dispute.funds_withdrawn_at is None:
        dispute.funds_withdrawn_at = at
    elif funds == FUNDS_REINSTATED and dispute.funds_reinstated_at is None:
        dispute.funds_reinstated_at = at


def _stage(status: str) -> int:
    """How far a dispute is: needs a response (0), under review (1), decided (2)."""
    if status in CLOSED_STATUSES:
        return 2
    return 0 if status in NEEDS_RESPONSE_STATUSES else 1


def _visible_state(dispute: Dispute) -> tuple:
    return (
        dispute.status,
        dispute.amount,
        dispute.reason,
        dispute.evidence_due_by,
        dispute.has_evidence,
        dispute.submission_count,
        dispute.evidence_text,
        dispute.funds_withdrawn_at is not None,
        dispute.funds_reinstated_at is not None,
    )


def _announce(payment: Payment, dispute: Dispute, kind: str) -> None:
    log.info("dispute %s of payment %s: %s (%s)", dispute.public_id, payment.public_id, kind,
             dispute.status)  # fmt: skip
    signals.changed.send(payment, dispute, kind)


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DisputePage:
    disputes: list[Dispute]
    has_more: bool
    next_cursor: str | None


def get_dispute(merchant_id: int, public_id: str, *, livemode: bool) -> Dispute:
    """The merchant's dispute of this mode (another mode's is not found, as on Stripe)."""
    dispute = db.session.scalar(
        select(Dispute).where(
            Dispute.public_id == public_id,
            Dispute.merchant_id == merchant_id,
            Dispute.livemode == livemode,
        )
    )
    if dispute is None:
        raise PayBridgeError("DISPUTE_NOT_FOUND", param="id")
    return dispute


def list_disputes(
    merchant_id: int,
    *,
    livemode: bool,
    status: str | None = None,
    payment_id: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    starting_after: str | None = None,
) -> DisputePage:
    """The merchant's disputes of one mode, newest first, one page after the cursor.
    `payment_id` is a payment's public id: one the key cannot see simply has no disputes."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    # Each dispute's payment (the serializer names it) in one more query, not one per row.
    stmt = (
        select(Dispute)
        .options(selectinload(Dispute.payment))
        .where(Dispute.merchant_id == merchant_id, Dispute.livemode == livemode)
    )
    if status:
        stmt = stmt.where(Dispute.status == status)
    if payment_id:
        the_payment = select(Payment.id).where(
            Payment.public_id == payment_id, Payment.merchant_id == merchant_id
        )
        stmt = stmt.where(Dispute.payment_id == the_payment.scalar_subquery())
    scope = f"api.disputes:{merchant_id}:{'live' if livemode else 'test'}"
    return DisputePage(
        *cursors.newest_first_page(
            db.session,
            stmt,
            Dispute.created_at,
            Dispute.id,
            scope=scope,
            starting_after=starting_after,
            limit=limit,
        )  # fmt: skip
    )


# -- the merchant's answers ------------------------------------------------------------------


def submit_evidence(dispute_id: int, text: str) -> Dispute:
    """Send text evidence to the PSP and submit it (Stripe's `disputes.update`); commits.

    Submitting the evidence already submitted answers the dispute as it is (a retried request,
    a double click, or a retry after the PSP's answer was lost: its dispute then holds this
    text); other evidence after a submission, a decided dispute or one past its due date are
    refused. No transaction (nor row lock) stays open while the PSP is called."""
    text = text.strip() if isinstance(text, str) else ""
    if not text or len(text) > MAX_EVIDENCE_TEXT:
        raise PayBridgeError(
            "VALIDATION_ERROR",
            f"evidence text must be 1 to {MAX_EVIDENCE_TEXT} characters",
            param="text",
        )
    dispute = _fresh(dispute_id)

    def submitted(state: Dispute | PspDispute) -> bool:
        return state.evidence_text == text and state.submission_count > 0

    if submitted(dispute):
        db.session.commit()
        return dispute
    _check_answerable(dispute)
    public_id, psp_id, provider = _at_psp(dispute)
    reported = _ask_psp(
        dispute_id,
        public_id,
        lambda: provider.update_dispute(psp_id, evidence={"uncategorized_text": text}, submit=True),
        lambda: provider.retrieve_dispute(psp_id),
        done=submitted,
    )
    return _record_answer(dispute_id, reported, evidence_text=text)


def accept_dispute(dispute_id: int) -> Dispute:
    """Accept the dispute at the PSP (Stripe's `disputes.close`: it is lost); commits.
    Accepting an accepted dispute answers it as it is."""
    dispute = _fresh(dispute_id)
    if dispute.status in ("lost", "warning_closed"):
        db.session.commit()
        return dispute
    if dispute.is_closed:
        raise _closed(dispute)
    if not dispute.needs_response:  # under review: the evidence given is the answer
        raise PayBridgeError(
            "DISPUTE_EVIDENCE_SUBMITTED",
            details={"dispute_id": dispute.public_id, "status": dispute.status},
        )
    public_id, psp_id, provider = _at_psp(dispute)
    reported = _ask_psp(
        dispute_id,
        public_id,
        lambda: provider.close_dispute(psp_id),
        lambda: provider.retrieve_dispute(psp_id),
        done=lambda current: current.status in ("lost", "warning_closed"),
    )
    return _record_answer(dispute_id, reported)


def _at_psp(dispute: Dispute) -> tuple[str, str, PaymentProvider]:
    """What the call needs of the dispute, read before the commit that ends the transaction: no
    transaction (not even a read, which an expired attribute would start) stays open while the
    PSP is called."""
    public_id, psp_id = dispute.public_id, dispute.psp_dispute_id
    provider = get_provider(dispute.psp, livemode=dispute.livemode)
    db.session.commit()
    return public_id, psp_id, provider


def _fresh(dispute_id: int) -> Dispute:
    dispute = db.session.get(Dispute, dispute_id, populate_existing=True)
    if dispute is None:
        raise PayBridgeError("DISPUTE_NOT_FOUND", param="id")
    return dispute


def _closed(dispute: Dispute) -> PayBridgeError:
    return PayBridgeError(
        "DISPUTE_CLOSED",
        f"The dispute is closed ({dispute.status_label.lower()}): it takes no answer.",
        details={"dispute_id": dispute.public_id, "status": dispute.status},
    )


def _check_answerable(dispute: Dispute, *, past_due: bool = False) -> None:
    if dispute.is_closed:
        raise _closed(dispute)
    if not dispute.needs_response:
        raise PayBridgeError(
            "DISPUTE_EVIDENCE_SUBMITTED",
            details={"dispute_id": dispute.public_id, "status": dispute.status},
        )
    due = dispute.evidence_due_by
    if past_due or not dispute.answerable(utcnow()):
        raise PayBridgeError(
            "DISPUTE_PAST_DUE",
            details={"dispute_id": dispute.public_id, "evidence_due_by": due and due.isoformat()},
        )


def _ask_psp(dispute_id: int, public_id: str, call, retrieve, *, done) -> PspDispute:
    """The PSP's answer to `call`; when it refuses, its dispute as it is now: the answer when
    it shows `call` already `done` (an earlier attempt whose reply was lost), else why it was
    refused (closed, submitted, past due) in PayBridge's words, recorded first."""
    details = {"dispute_id": public_id}
    try:
        try:
            return call()
        except (PspUnavailable, PspNotFound):
            raise
        except PspError as refused:
            current = retrieve()
            if done(current):
                log.info("dispute %s: the PSP already has this answer", public_id)
                return current
            log.warning("dispute %s: the PSP refused the answer: %s", public_id, refused)
            recorded = _record_answer(dispute_id, current)
            _check_answerable(recorded, past_due=current.past_due)
            raise PayBridgeError(
                "PSP_REJECTED",
                f"The payment service provider refused the answer: {refused.message}"[:1000],
                details={**details, "psp_code": refused.code},
            ) from refused
    except PspUnavailable as exc:
        raise PayBridgeError(
            "PSP_UNAVAILABLE", details=details, headers={"Retry-After": "2"}
        ) from exc
    except PspNotFound as exc:
        raise PayBridgeError(
            "PSP_ERROR", "The payment service provider does not know this dispute.", details=details
        ) from exc
    except PspError as exc:
        raise PayBridgeError("PSP_ERROR", details=details) from exc


def _record_answer(dispute_id: int, reported: PspDispute, *, evidence_text: str | None = None):
    """Record what the PSP answered under the payment's and the dispute's locks; commits."""
    payment_id = db.session.scalar(select(Dispute.payment_id).where(Dispute.id == dispute_id))
    assert payment_id is not None  # disputes are never deleted
    payment = lock_payment(payment_id)
    dispute = lock_row(Dispute, dispute_id)
    assert dispute is not None  # disputes are never deleted
    if evidence_text is not None:
        dispute.evidence_text = evidence_text
    apply_psp_dispute(payment, dispute, reported, at=None)
    db.session.commit()
    return dispute
