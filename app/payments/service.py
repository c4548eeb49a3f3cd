"""Creating, registering, expiring and reading payments.

The create path's order of work is the contract (DESIGN.md, issue 3):
validate → insert the payment (CREATED) and its idempotency record, commit → call the PSP outside
any database transaction, with the payment's own PSP idempotency key → lock the row, record
INITIATED with the session, complete the idempotency record, commit.
A crash between two steps leaves a CREATED payment that a retry with the same Idempotency-Key, or
reconciliation (`register_with_psp`), finishes with the same PSP key — never a second session.

Functions that call the PSP own their transactions (a PSP call must not hold a row lock or an
open transaction); everything else flushes and leaves the commit to its caller.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from app.db_retry import is_lock_conflict
from app.errors import PayBridgeError
from app.extensions import db
from app.models import IdempotencyRecord, Payment, utcnow
from app.payments import idempotency
from app.payments.outcomes import failure_reason, is_backwards, target_for_session
from app.payments.serialize import payment_to_dict
from app.payments.state import lock_payment, record_creation, transition
from app.payments.status import PaymentStatus, StatusSource, is_allowed
from app.payments.validation import fingerprint, normalise, validate_create_params
from app.psp import (
    CheckoutRequest,
    CheckoutSession,
    PspError,
    PspInvalidState,
    PspNotFound,
    PspRejected,
    PspUnavailable,
    get_provider,
)

log = logging.getLogger(__name__)

CREATE_METHOD = "POST"
CREATE_PATH = "/api/v1/payments"
REPLAYED_HEADER = "Idempotent-Replayed"
POLL_INTERVAL_SECONDS = 0.1
# Time for the registration request to reach the PSP before its minimum window is checked.
REGISTRATION_MARGIN = timedelta(seconds=60)
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class CreateResult:
    """The answer to a create request: the payment and the response that describes it."""

    payment: Payment
    status: int
    body: dict
    replayed: bool = False


# -- create ----------------------------------------------------------------------------------


def create_payment(merchant_id: int, params: dict, *, idempotency_key: str | None) -> Payment:
    """Create a payment exactly once and register it at the PSP; returns it INITIATED."""
    return submit_payment(merchant_id, params, idempotency_key=idempotency_key).payment


def submit_payment(
    merchant_id: int, params: dict, *, idempotency_key: str | None, schema_loaded: bool = False
) -> CreateResult:
    """create_payment for the API: also returns the (possibly replayed) status and body.

    `schema_loaded`: the API route's flask-smorest arguments already loaded `params` with
    PaymentCreateSchema; a second load costs ~0.15 ms (~1.5% of a create's web CPU)."""
    data = normalise(params) if schema_loaded else validate_create_params(params)
    key = idempotency.check_key(idempotency_key)
    request_fingerprint = fingerprint(data)
    for attempt in range(3):
        try:
            return _create_once(merchant_id, data, key, request_fingerprint)
        except _InsertDeadlock as exc:
            # InnoDB may pick a racing twin's insert as a deadlock victim: nothing was written,
            # so starting over is safe.
            if attempt == 2:
                raise exc.__cause__ from None
    raise AssertionError("unreachable")


class _InsertDeadlock(Exception):
    """The insert of a new payment lost a deadlock; it wrote nothing."""


def _create_once(
    merchant_id: int, data: dict, key: str | None, request_fingerprint: str
) -> CreateResult:
    if key:
        record = idempotency.find(merchant_id, key)
        if record is not None:
            return _resume(record, request_fingerprint)

    payment = _new_payment(merchant_id, data)
    record = None
    if key:
        record = idempotency.new_record(
            merchant_id,
            key,
            method=CREATE_METHOD,
            path=CREATE_PATH,
            request_fingerprint=request_fingerprint,
        )
        record.payment = payment
    try:
        # Read the new ids after the flush, not after the commit: a commit expires every
        # object and reading them then costs a SELECT each (this path runs on every create).
        db.session.flush()
        payment_id, public_id = payment.id, payment.public_id
        record_id = record.id if record else None
        created = (checkout_request(payment), payment.psp)
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        return _after_conflict(merchant_id, data, key, request_fingerprint, exc)
    except OperationalError as exc:
        db.session.rollback()
        if not is_lock_conflict(exc):
            raise
        raise _InsertDeadlock() from exc
    log.info("payment %s created (merchant %s)", public_id, merchant_id)
    # Just committed CREATED by this request: registered without reading it back.
    payment, response = _register(
        payment_id, source=StatusSource.API, record_id=record_id, created=created
    )
    return _as_result(payment, response)


def _new_payment(merchant_id: int, data: dict) -> Payment:
    payment = Payment(
        merchant_id=merchant_id,
        merchant_reference=data["merchant_reference"],
        amount=data["amount"],
        currency=data["currency"],
        payment_type=data["payment_type"],
        interval=data.get("interval"),
        interval_count=data.get("interval_count"),
        description=data.get("description"),
        customer_email=data.get("customer_email"),
        success_url=data["success_url"],
        cancel_url=data["cancel_url"],
        metadata_=data.get("metadata") or {},
        psp=current_app.config["PSP_NAME"],
        created_at=utcnow(),
    )
    db.session.add(payment)
    record_creation(payment, source=StatusSource.API)
    return payment


def _after_conflict(
    merchant_id: int,
    data: dict,
    key: str | None,
    request_fingerprint: str,
    error: IntegrityError,
) -> CreateResult:
    """The insert hit a unique constraint: a concurrent twin of this request, or a duplicate."""
    if key:
        record = idempotency.find(merchant_id, key)
        if record is not None:
            return _resume(record, request_fingerprint)
    existing = db.session.execute(
        select(Payment)
        .where(Payment.merchant_id == merchant_id)
        .where(Payment.merchant_reference == data["merchant_reference"])
    ).scalar_one_or_none()
    if existing is None:
        raise error  # not a constraint this function knows: let it surface
    raise PayBridgeError(
        "DUPLICATE_MERCHANT_REFERENCE",
        f"A payment with merchant_reference {data['merchant_reference']!r} already exists: "
        f"{existing.public_id}.",
        param="merchant_reference",
        details={"payment_id": existing.public_id, "status": existing.status},
    )


def _lease_seconds() -> float:
    """How long an owner may work on a key before another request may take it over."""
    config = current_app.config
    retries = config["STRIPE_MAX_NETWORK_RETRIES"]
    return config["STRIPE_TIMEOUT_SECONDS"] * (retries + 1) + 5 * retries + 10


def _resume(record: IdempotencyRecord, request_fingerprint: str) -> CreateResult:
    """A request with a known key: replay its answer, finish its work, or wait for its owner."""
    if not idempotency.matches(
        record, method=CREATE_METHOD, path=CREATE_PATH, request_fingerprint=request_fingerprint
    ):
        raise PayBridgeError("IDEMPOTENCY_KEY_REUSED", param="Idempotency-Key")
    wait = float(current_app.config["IDEMPOTENCY_WAIT_SECONDS"])
    deadline = time.monotonic() + wait
    while True:
        stored = idempotency.stored_response(record)
        if stored is not None:
            return _replay(record, stored)
        payment = db.session.get(Payment, record.payment_id, populate_existing=True)
        if payment.status != PaymentStatus.CREATED:
            # Registered meanwhile by reconciliation: this request's answer is the payment now.
            _, response = _register(payment.id, source=StatusSource.API, record_id=record.id)
            return _as_result(payment, response, replayed=True)
        claimable = record.state == idempotency.STATE_RETRYABLE or idempotency.lease_expired(
            record, lease_seconds=_lease_seconds(), now=utcnow()
        )
        if claimable and idempotency.claim(record.id, lease_seconds=_lease_seconds()):
            # The previous attempt failed retryably or its owner died: finish it, same PSP key.
            return _register_for_request(payment.id, record.id)
        if time.monotonic() >= deadline:
            raise PayBridgeError(
                "REQUEST_IN_PROGRESS",
                details={"payment_id": payment.public_id},
                headers={"Retry-After": "1"},
            )
        db.session.rollback()  # end the snapshot so the next read sees the owner's commit
        time.sleep(POLL_INTERVAL_SECONDS)
        record = idempotency.find(record.merchant_id, record.idempotency_key)


def _replay(record: IdempotencyRecord, stored: idempotency.StoredResponse) -> CreateResult:
    if stored.status >= 400:
        raise _error_from(stored, replayed=True)
    payment = db.session.get(Payment, record.payment_id)
    return CreateResult(payment, stored.status, stored.body, replayed=True)


def _error_from(stored: idempotency.StoredResponse, *, replayed: bool = False) -> PayBridgeError:
    error = stored.body.get("error", {})
    return PayBridgeError(
        error.get("code", "INTERNAL_ERROR"),
        error.get("message"),
        param=error.get("param"),
        details=error.get("details"),
        headers={REPLAYED_HEADER: "true"} if replayed else None,
    )


def _as_result(
    payment: Payment, response: idempotency.StoredResponse, *, replayed: bool = False
) -> CreateResult:
    if response.status >= 400:
        raise _error_from(response, replayed=replayed)
    return CreateResult(payment, response.status, response.body, replayed=replayed)


def _register_for_request(payment_id: int, record_id: int | None) -> CreateResult:
    payment, response = _register(payment_id, source=StatusSource.API, record_id=record_id)
    return _as_result(payment, response)


# -- registration at the PSP -------------------------------------------------------------------


def checkout_return_urls(payment: Payment) -> tuple[str, str]:
    """PayBridge's own return URLs for the PSP: (success_url, cancel_url)."""
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return (
        f"{base}/checkout/return/{payment.public_id}?session_id={{CHECKOUT_SESSION_ID}}",
        f"{base}/checkout/cancel/{payment.public_id}",
    )


def checkout_request(payment: Payment) -> CheckoutRequest:
    """What the PSP gets for this payment; the same for every retry, so its key replays."""
    success_url, cancel_url = checkout_return_urls(payment)
    ttl = timedelta(seconds=current_app.config["CHECKOUT_SESSION_TTL_SECONDS"])
    return CheckoutRequest(
        payment_id=payment.public_id,
        merchant_reference=payment.merchant_reference,
        idempotency_key=payment.psp_idempotency_key,
        amount=payment.amount,
        currency=payment.currency,
        description=payment.description,
        customer_email=payment.customer_email,
        success_url=success_url,
        cancel_url=cancel_url,
        expires_at=(payment.created_at + ttl).replace(microsecond=0),
        metadata=dict(payment.metadata_ or {}),
        interval=payment.interval,
        interval_count=payment.interval_count,
    )


def register_with_psp(payment_id: int, *, source: StatusSource) -> Payment:
    """CREATED → INITIATED at the PSP with the payment's own idempotency key; commits.

    Returns the payment: INITIATED, or FAILED with the PSP's code when the PSP rejected it, or
    unchanged when it was no longer CREATED. Raises PSP_UNAVAILABLE / PSP_ERROR (payment stays
    CREATED, safe to call again).
    """
    payment, _ = _register(payment_id, source=source)
    return payment


def _register(
    payment_id: int,
    *,
    source: StatusSource,
    record_id: int | None = None,
    created: tuple[CheckoutRequest, str] | None = None,
) -> tuple[Payment, idempotency.StoredResponse]:
    """Register one payment; complete the idempotency record with the answer in the same commit.

    `created`: (checkout request, PSP name) of a payment this request has just committed as
    CREATED, so there is nothing to read back (a SELECT and a COMMIT on every create).
    """
    if created is None:
        payment = db.session.get(Payment, payment_id, populate_existing=True)
        if payment is None:
            raise PayBridgeError("PAYMENT_NOT_FOUND")
        if payment.status != PaymentStatus.CREATED:
            response = _created_response(payment)
            if record_id is not None:
                idempotency.complete(record_id, response)
                db.session.commit()
            return payment, response
        request = checkout_request(payment)
        psp_name = payment.psp
        db.session.commit()  # no transaction stays open while the PSP is called
    else:
        request, psp_name = created

    provider = get_provider(psp_name)
    public_id = request.payment_id
    if utcnow() + provider.min_checkout_window + REGISTRATION_MARGIN >= request.expires_at:
        # Its checkout window closed, or too little of it is left for the PSP to accept, before
        # it was registered (PSP down for that long). The same PSP key must carry the same
        # expires_at, so a later one is no option: a second session could not be told from a
        # first whose answer was lost. No one holds a URL of such a session; the wide pass
        # expires any that is still open.
        payment = lock_payment(payment_id)
        if payment.status == PaymentStatus.CREATED:
            reason = "checkout window closed before the PSP registration"
            transition(
                payment,
                PaymentStatus.FAILED,
                source=source,
                reason=reason,
                failure_code="expired",
                failure_message=reason,
            )
        response = _created_response(payment)
        if record_id is not None:
            idempotency.complete(record_id, response)
        db.session.commit()
        return payment, response

    try:
        session = provider.create_checkout_session(request)
    except PspRejected as exc:
        return _record_rejection(payment_id, exc, source=source, record_id=record_id)
    except PspUnavailable as exc:
        _release(record_id)
        log.warning("payment %s stays CREATED: PSP unavailable (%s)", public_id, exc.code)
        breaker_open = exc.code == "circuit_open"
        retry_after = current_app.config["PSP_BREAKER_RESET_SECONDS"] if breaker_open else 2
        raise PayBridgeError(
            "PSP_UNAVAILABLE",
            details={"payment_id": public_id, "status": PaymentStatus.CREATED.value},
            headers={"Retry-After": str(retry_after)},
        ) from exc
    except PspError as exc:
        _release(record_id)
        log.error("payment %s stays CREATED: PSP error %s", public_id, exc.code)
        raise PayBridgeError(
            "PSP_ERROR",
            details={"payment_id": public_id, "status": PaymentStatus.CREATED.value},
        ) from exc

    payment = lock_payment(payment_id)
    orphan = None
    if payment.status == PaymentStatus.CREATED:
        payment.psp = provider.name
        payment.psp_session_id = session.id
        payment.checkout_url = session.url
        payment.psp_expires_at = session.expires_at
        transition(payment, PaymentStatus.INITIATED, source=source, reason="registered at the PSP")
        # A replayed registration may find the session already finished (e.g. expired).
        _apply_session(payment, session, source=source, reason="PSP session state at registration")
    elif payment.psp_session_id != session.id and session.status == "open":
        # Stopped (expired) while we were registering it: leave no live checkout behind.
        orphan = session.id
    response = _created_response(payment)
    if record_id is not None:
        idempotency.complete(record_id, response)
    db.session.commit()
    if orphan:
        _expire_quietly(provider, orphan, public_id)
    return payment, response


def _created_response(payment: Payment) -> idempotency.StoredResponse:
    return idempotency.StoredResponse(201, payment_to_dict(payment))


def _release(record_id: int | None) -> None:
    db.session.rollback()
    if record_id is not None:
        idempotency.release(record_id)
        db.session.commit()


def _record_rejection(
    payment_id: int, exc: PspRejected, *, source: StatusSource, record_id: int | None
) -> tuple[Payment, idempotency.StoredResponse]:
    payment = lock_payment(payment_id)
    if payment.status == PaymentStatus.CREATED:
        transition(
            payment,
            PaymentStatus.FAILED,
            source=source,
            reason=f"rejected by the PSP: {exc.code}",
            failure_code=(exc.code or "psp_rejected")[:100],
            failure_message=exc.message[:500],
        )
    code = payment.failure_code or exc.code
    error = PayBridgeError(
        "PSP_REJECTED",
        f"The payment service provider rejected the payment ({code}): {exc.message}"[:1000],
        details={"payment_id": payment.public_id, "psp_code": code, "status": payment.status},
    )
    response = idempotency.StoredResponse(error.status, error.to_dict())
    if record_id is not None:
        idempotency.complete(record_id, response)
    db.session.commit()
    log.warning("payment %s rejected by the PSP: %s", payment.public_id, code)
    return payment, response


def _expire_quietly(provider, session_id: str, public_id: str) -> None:
    try:
        provider.expire_checkout_session(session_id)
    except PspError as exc:  # reconciliation's wide pass finds it later
        log.warning("could not expire orphan session of %s: %s", public_id, exc)


def _apply_session(
    payment: Payment, session: CheckoutSession, *, source: StatusSource, reason: str
) -> PaymentStatus | None:
    """Move a locked payment to what the session proves (outcomes mapping); returns the target."""
    target = target_for_session(session)
    if session.payment_intent_id:
        payment.psp_payment_intent_id = session.payment_intent_id
    if session.subscription_id:
        payment.psp_subscription_id = session.subscription_id
    if target is None or target == payment.status_enum:
        return target
    if is_backwards(payment.status_enum, target) or not is_allowed(payment.status_enum, target):
        return target
    code, why = (None, reason)
    if target == PaymentStatus.FAILED:
        code, why = failure_reason(None, session)
    transition(payment, target, source=source, reason=why, failure_code=code, failure_message=why)
    return target


# -- expire ------------------------------------------------------------------------------------


def expire_payment(payment_id: int, *, source: StatusSource, reason: str) -> Payment:
    """Stop a payment that is not final: expire its PSP session, then FAILED; commits.

    When the PSP says the session already finished, its truth is applied instead; a payment
    that turned out paid (or is being paid) answers PAYMENT_ALREADY_FINAL / ILLEGAL_TRANSITION.
    """
    payment = db.session.get(Payment, payment_id, populate_existing=True)
    if payment is None:
        raise PayBridgeError("PAYMENT_NOT_FOUND")
    if payment.is_final:
        raise PayBridgeError(
            "PAYMENT_ALREADY_FINAL",
            f"The payment is already {payment.status}.",
            details={"payment_id": payment.public_id, "status": payment.status},
        )
    session_id, psp, public_id = payment.psp_session_id, payment.psp, payment.public_id
    status_before = payment.status
    db.session.commit()

    truth: CheckoutSession | None = None
    if session_id:
        provider = get_provider(psp)
        try:
            try:
                truth = provider.expire_checkout_session(session_id)
            except PspInvalidState:
                truth = provider.retrieve_checkout_session(session_id)
        except PspNotFound:
            log.warning("payment %s: PSP has no session %s", public_id, session_id)
        except PspUnavailable as exc:
            raise PayBridgeError(
                "PSP_UNAVAILABLE",
                details={"payment_id": public_id, "status": status_before},
                headers={"Retry-After": "2"},
            ) from exc
        except PspError as exc:
            raise PayBridgeError("PSP_ERROR", details={"payment_id": public_id}) from exc

    payment = lock_payment(payment_id)
    if truth is not None and truth.status != "expired":
        target = _apply_session(payment, truth, source=source, reason="completed at the PSP")
        if target is None:  # the PSP refused to expire a session it still reports open
            db.session.rollback()
            raise PayBridgeError(
                "PSP_ERROR",
                "The payment service provider could not expire the checkout session.",
                details={"payment_id": public_id, "status": status_before},
            )
        db.session.commit()
        if payment.status == PaymentStatus.FAILED:
            return payment
        if payment.is_final or target == PaymentStatus.SUCCESS:
            raise PayBridgeError(
                "PAYMENT_ALREADY_FINAL",
                "The shopper paid before the payment could be expired.",
                details={"payment_id": public_id, "status": payment.status},
            )
        raise PayBridgeError(
            "ILLEGAL_TRANSITION",
            "The shopper completed checkout and the payment is being processed; "
            "it can no longer be expired.",
            details={"payment_id": public_id, "status": payment.status},
        )
    if payment.status == PaymentStatus.SUCCESS:
        db.session.commit()
        raise PayBridgeError(
            "PAYMENT_ALREADY_FINAL",
            details={"payment_id": public_id, "status": payment.status},
        )
    if not payment.is_final:
        transition(
            payment,
            PaymentStatus.FAILED,
            source=source,
            reason=reason,
            failure_code="expired",
            failure_message=reason,
        )
    db.session.commit()
    return payment


# -- read ---------------------------------------------------------------------------------------


def get_payment(merchant_id: int, public_id: str) -> Payment:
    """One of the merchant's payments; someone else's is PAYMENT_NOT_FOUND like a missing one."""
    payment = db.session.execute(
        select(Payment)
        .where(Payment.public_id == public_id)
        .where(Payment.merchant_id == merchant_id)
    ).scalar_one_or_none()
    if payment is None:
        raise PayBridgeError("PAYMENT_NOT_FOUND", param="id")
    return payment


@dataclass(frozen=True)
class PaymentPage:
    payments: list[Payment]
    has_more: bool
    next_cursor: str | None


def encode_cursor(payment: Payment) -> str:
    """An opaque cursor: the position (created_at, id) of the last payment on a page."""
    raw = json.dumps([payment.created_at.isoformat(), payment.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The position a cursor stands for; VALIDATION_ERROR when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(created), int(row_id)
    except (ValueError, TypeError, binascii.Error):
        raise PayBridgeError(
            "VALIDATION_ERROR", "starting_after is not a valid cursor.", param="starting_after"
        ) from None


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def list_payments(
    merchant_id: int,
    *,
    status: str | None = None,
    created_gte: datetime | None = None,
    created_lte: datetime | None = None,
    merchant_reference: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    starting_after: str | None = None,
) -> PaymentPage:
    """The merchant's payments, newest first, filtered, one page after the cursor."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    stmt = select(Payment).where(Payment.merchant_id == merchant_id)
    if status:
        stmt = stmt.where(Payment.status == status)
    if created_gte:
        stmt = stmt.where(Payment.created_at >= _naive_utc(created_gte))
    if created_lte:
        stmt = stmt.where(Payment.created_at <= _naive_utc(created_lte))
    if merchant_reference:
        stmt = stmt.where(Payment.merchant_reference == merchant_reference)
    if starting_after:
        created, row_id = decode_cursor(starting_after)
        same_time_older_id = (Payment.created_at == created) & (Payment.id < row_id)
        stmt = stmt.where((Payment.created_at < created) | same_time_older_id)
    stmt = stmt.order_by(Payment.created_at.desc(), Payment.id.desc()).limit(limit + 1)
    rows = list(db.session.execute(stmt).scalars())
    has_more = len(rows) > limit
    rows = rows[:limit]
    return PaymentPage(rows, has_more, encode_cursor(rows[-1]) if has_more and rows else None)
