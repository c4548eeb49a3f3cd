"""Creating, registering and expiring payments.

The create path's order of work is the contract (DESIGN.md):
validate → insert the payment (CREATED) and its idempotency record, commit → call the PSP outside
any database transaction, with the payment's own PSP idempotency key → lock the row, record
INITIATED with the session, complete the idempotency record, commit.
A crash between two steps leaves a CREATED payment that a retry with the same Idempotency-Key, or
reconciliation (`register_with_psp`), finishes with the same PSP key — never a second session.

Functions that call the PSP own their transactions (a PSP call must not hold a row lock or an
open transaction); everything else flushes and leaves the commit to its caller.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.common import idempotency
from app.common.idempotency import CommandResult, IdempotentCommand, IdempotentRequest
from app.common.ratelimits import FairCap
from app.errors import PayBridgeError
from app.extensions import db, get_limits_redis
from app.metrics import RATE_LIMITED
from app.models import IdempotencyRecord, Payment, PaymentStatus, StatusSource, utcnow
from app.models.payment import new_payment_id
from app.payments import failure_reasons
from app.payments.attempts import expiry_reason
from app.payments.failure_reasons import CANCELED_REASONS
from app.payments.psp_facts import apply_own_session
from app.payments.state import lock_payment, record_creation, transition
from app.payments.validation import fingerprint, normalise, validate_create_params
from app.psp import (
    CheckoutRequest,
    CheckoutSession,
    PaymentProvider,
    PspError,
    PspInvalidState,
    PspModeNotConfigured,
    PspNotFound,
    PspRateLimited,
    PspRejected,
    PspUnavailable,
    configured_modes,
    get_provider,
)
from app.serializers.payment import payment_to_dict

log = logging.getLogger(__name__)

CREATE_METHOD = "POST"
CREATE_PATH = "/api/v1/payments"
# Time for the registration request to reach the PSP before its minimum window is checked.
REGISTRATION_MARGIN = timedelta(seconds=60)

CreateResult = CommandResult[Payment]


# -- create ----------------------------------------------------------------------------------


def create_payment(
    merchant_id: int, params: dict, *, idempotency_key: str | None, livemode: bool = False
) -> Payment:
    """Create a payment exactly once and register it at the PSP; returns it INITIATED."""
    return submit_payment(
        merchant_id, params, idempotency_key=idempotency_key, livemode=livemode
    ).subject


def submit_payment(
    merchant_id: int,
    params: dict,
    *,
    idempotency_key: str | None,
    livemode: bool = False,
    schema_loaded: bool = False,
) -> CreateResult:
    """create_payment for the API: also returns the (possibly replayed) status and body.
    `livemode`: the API key's mode, which the payment takes for good.

    `schema_loaded`: the API route's flask-smorest arguments already loaded `params` with
    PaymentCreateSchema; a second load costs ~0.15 ms (~1.5% of a create's web CPU)."""
    require_mode(livemode)
    data = normalise(params) if schema_loaded else validate_create_params(params)
    request = IdempotentRequest(
        merchant_id,
        idempotency.check_key(idempotency_key),
        CREATE_METHOD,
        CREATE_PATH,
        fingerprint(data),
        livemode,
    )
    return _CreatePayment(data).run(request)


def require_mode(livemode: bool) -> None:
    """Refuse, before anything is stored, a payment in a mode this deployment has no Stripe key
    for: it could never be registered, so accepting it would only leave it to fail later."""
    if livemode not in configured_modes():
        mode = "live" if livemode else "test"
        raise PayBridgeError(
            "MODE_NOT_CONFIGURED",
            f"This PayBridge runs no {mode} mode: payments cannot be made with a "
            f"pbk_{mode}_ key here. Its operator sets STRIPE_{mode.upper()}_SECRET_KEY.",
        )


@dataclass(frozen=True)
class _Inserted:
    """A payment this request has just committed as CREATED: what registering it needs, so
    nothing is read back (a SELECT and a COMMIT on every create)."""

    payment_id: int
    record_id: int | None
    checkout: CheckoutRequest
    psp: str
    livemode: bool
    merchant_id: int


class _CreatePayment(IdempotentCommand[Payment, _Inserted]):
    what = "payment"

    def __init__(self, data: dict) -> None:
        self.data = data

    def start(self, request: IdempotentRequest) -> _Inserted:
        payment = new_payment(request.merchant_id, self.data, livemode=request.livemode)
        record = request.new_record()
        if record is not None:
            record.payment = payment
        # Read the new ids after the flush, not after the commit: a commit expires every
        # object and reading them then costs a SELECT each (this path runs on every create).
        db.session.flush()
        inserted = _Inserted(
            payment.id,
            record.id if record else None,
            checkout_request(payment),
            payment.psp,
            payment.livemode,
            request.merchant_id,
        )
        public_id = payment.public_id
        db.session.commit()
        log.info("payment %s created (merchant %s)", public_id, request.merchant_id)
        return inserted

    def finish(self, started: _Inserted) -> tuple[Payment, idempotency.StoredResponse]:
        return _register(
            started.payment_id,
            source=StatusSource.API,
            record_id=started.record_id,
            created=(started.checkout, started.psp, started.livemode, started.merchant_id),
        )

    def subject_of(self, record: IdempotencyRecord) -> Payment | None:
        return db.session.get(Payment, record.payment_id, populate_existing=True)

    def settled_meanwhile(self, record: IdempotencyRecord, payment: Payment) -> CreateResult | None:
        if payment.status == PaymentStatus.CREATED:
            return None
        # Registered meanwhile by reconciliation: this request's answer is the payment now.
        registered = _register(payment.id, source=StatusSource.API, record_id=record.id)
        return self.answer(*registered, replayed=True)

    def finish_claimed(
        self, record: IdempotencyRecord, payment: Payment
    ) -> tuple[Payment, idempotency.StoredResponse]:
        # The previous attempt failed retryably or its owner died: finish it, same PSP key.
        return _register(payment.id, source=StatusSource.API, record_id=record.id)

    def duplicate(self, request: IdempotentRequest, error: IntegrityError):
        reference = self.data["merchant_reference"]
        existing = db.session.execute(
            select(Payment)
            .where(Payment.merchant_id == request.merchant_id)
            .where(Payment.livemode == request.livemode)
            .where(Payment.merchant_reference == reference)
        ).scalar_one_or_none()
        if existing is None:
            raise error  # not a constraint this command knows: let it surface
        raise PayBridgeError(
            "DUPLICATE_MERCHANT_REFERENCE",
            f"A payment with merchant_reference {reference!r} already exists: "
            f"{existing.public_id}.",
            param="merchant_reference",
            details={"payment_id": existing.public_id, "status": existing.status},
        )

    def in_progress_details(self, payment: Payment) -> dict:
        return {"payment_id": payment.public_id}


def new_payment(merchant_id: int, data: dict, *, livemode: bool = False) -> Payment:
    """A CREATED payment with its first history row, added to the session; what its PSP
    create request takes from the settings is frozen on it now (see checkout_request)."""
    created_at = utcnow()
    public_id = new_payment_id()
    success_url, cancel_url = checkout_return_urls(public_id)
    payment = Payment(
        public_id=public_id,
        merchant_id=merchant_id,
        livemode=livemode,
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
        created_at=created_at,
        checkout_expires_at=checkout_expiry(created_at),
        checkout_success_url=success_url,
        checkout_cancel_url=cancel_url,
    )
    db.session.add(payment)
    record_creation(payment, source=StatusSource.API)
    return payment


# -- registration at the PSP -------------------------------------------------------------------


def checkout_return_urls(public_id: str) -> tuple[str, str]:
    """PayBridge's own return URLs for the PSP under today's PUBLIC_BASE_URL:
    (success_url, cancel_url)."""
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return (
        f"{base}/checkout/return/{public_id}?session_id={{CHECKOUT_SESSION_ID}}",
        f"{base}/checkout/cancel/{public_id}",
    )


def checkout_expiry(created_at: datetime) -> datetime:
    """When a checkout of a payment created then expires under today's TTL (whole seconds:
    the PSP takes unix seconds)."""
    ttl = timedelta(seconds=current_app.config["CHECKOUT_SESSION_TTL_SECONDS"])
    return (created_at + ttl).replace(microsecond=0)


def checkout_request(payment: Payment) -> CheckoutRequest:
    """What the PSP gets for this payment; the same for every retry, so its key replays.

    The return URLs and expiry are the ones frozen when the payment was stored: a change of
    PUBLIC_BASE_URL or CHECKOUT_SESSION_TTL_SECONDS between a lost answer and its retry must
    not change the request (the PSP would refuse the key). Payments stored before they were
    frozen (migration 0012) compute them as then."""
    success_url, cancel_url = payment.checkout_success_url, payment.checkout_cancel_url
    if success_url is None or cancel_url is None:
        success_url, cancel_url = checkout_return_urls(payment.public_id)
    expires_at = payment.checkout_expires_at or checkout_expiry(payment.created_at)
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
        expires_at=expires_at,
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
    created: tuple[CheckoutRequest, str, bool, int] | None = None,
) -> tuple[Payment, idempotency.StoredResponse]:
    """Register one payment; complete the idempotency record with the answer in the same commit.

    `created`: (checkout request, PSP name, livemode, merchant id) of a payment this request
    has just committed as CREATED, so there is nothing to read back (a SELECT and a COMMIT on
    every create).
    """
    if created is None:
        payment = db.session.get(Payment, payment_id, populate_existing=True)
        if payment is None:
            raise PayBridgeError("PAYMENT_NOT_FOUND")
        if payment.status != PaymentStatus.CREATED:
            response = _created_response(payment)
            if record_id is not None:  # the answer for the key's retry; nothing else to store
                idempotency.complete(record_id, response)
                db.session.commit()
            return payment, response
        request = checkout_request(payment)
        psp_name, livemode, merchant_id = payment.psp, payment.livemode, payment.merchant_id
        db.session.commit()  # no transaction stays open while the PSP is called
    else:
        request, psp_name, livemode, merchant_id = created

    try:
        provider = get_provider(psp_name, livemode=livemode)
    except PspModeNotConfigured as exc:  # its mode's key was removed since it was created
        _release(record_id)
        log.error("payment %s stays CREATED: %s", request.payment_id, exc)
        raise PayBridgeError(
            "PSP_UNAVAILABLE",
            details={"payment_id": request.payment_id, "status": PaymentStatus.CREATED.value},
        ) from exc
    public_id = request.payment_id
    if utcnow() + provider.min_checkout_window + REGISTRATION_MARGIN >= request.expires_at:
        # Its checkout window closed, or too little of it is left for the PSP to accept, before
        # it was registered (PSP down for that long). The same PSP key must carry the same
        # expires_at, so a later one is no option: a second session could not be told from a
        # first whose answer was lost. No one holds a URL of such a session; the wide pass
        # expires any that is still open.
        payment = lock_payment(payment_id)
        if payment.status == PaymentStatus.CREATED:
            _fail_as_expired(payment, source, "checkout window closed before the PSP registration")
        response = _created_response(payment)
        idempotency.complete(record_id, response)
        db.session.commit()
        return payment, response

    _pass_create_cap(provider, merchant_id, public_id, record_id)
    try:
        session = provider.create_checkout_session(request)
    except PspRejected as exc:
        return _record_rejection(payment_id, exc, source=source, record_id=record_id)
    except PspRateLimited as exc:
        _release(record_id)
        log.warning("payment %s stays CREATED: PSP rate limit (%s)", public_id, exc.code)
        raise _psp_rate_limited(public_id, 1) from exc
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
        apply_own_session(
            payment, session, source=source, reason="PSP session state at registration"
        )
    elif payment.psp_session_id != session.id and session.status == "open":
        # Stopped (expired) while we were registering it: leave no live checkout behind.
        orphan = session.id
    response = _created_response(payment)
    idempotency.complete(record_id, response)
    db.session.commit()
    if orphan:
        _expire_quietly(provider, orphan, public_id)
    return payment, response


def create_cap(psp_name: str, livemode: bool = False) -> FairCap:
    """The app's fair cap on creates towards one mode of the PSP account (all processes share it
    in Redis: its key names the PSP and a digest of that mode's secret key). Stripe counts test
    and live requests apart, so each mode has a cap of its own."""
    caps = current_app.extensions.setdefault("paybridge_psp_create_cap", {})
    cap = caps.get((psp_name, livemode))
    if cap is None:
        mode = "LIVE" if livemode else "TEST"
        secret = current_app.config.get(f"{psp_name.upper()}_{mode}_SECRET_KEY") or ""
        account = hashlib.sha256(secret.encode()).hexdigest()[:16]  # one account and mode
        key = f"paybridge:psp-create-cap:{psp_name}:{account}"
        cap = caps[(psp_name, livemode)] = FairCap(get_limits_redis(), key=key)
    return cap


def _pass_create_cap(
    provider: PaymentProvider, merchant_id: int, public_id: str, record_id: int | None
):
    """Wait for this merchant's slot in the create cap of the provider's account and mode
    (briefly), or answer 503 PSP_RATE_LIMITED: the payment stays CREATED and its
    Idempotency-Key can be retried."""
    config = current_app.config
    allowed, wait = create_cap(provider.name, provider.livemode).reserve(
        merchant_id,
        rate=config["PSP_CREATE_RATE_PER_SECOND"],
        share=config["PSP_CREATE_MERCHANT_SHARE"],
        max_wait=config["PSP_CREATE_MAX_QUEUE_SECONDS"],
    )
    if allowed:
        if wait > 0:
            time.sleep(wait)  # a short queue: the slot is reserved for this call
        return
    _release(record_id)
    RATE_LIMITED.labels("psp_create").inc()
    log.warning(
        "payment %s stays CREATED: merchant %s over its share of the PSP's create rate",
        public_id,
        merchant_id,
    )
    # A rate limit as callers that retry PSP calls see one (reconciliation backs off).
    cause = PspRateLimited("over the merchant's share of the create cap", code="rate_limit")
    raise _psp_rate_limited(public_id, wait) from cause


def _psp_rate_limited(public_id: str, retry_after: float) -> PayBridgeError:
    return PayBridgeError(
        "PSP_RATE_LIMITED",
        details={"payment_id": public_id, "status": PaymentStatus.CREATED.value},
        headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
    )


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
            failure_reason=failure_reasons.REJECTED_BY_PSP,
        )
    code = payment.failure_code or exc.code
    error = PayBridgeError(
        "PSP_REJECTED",
        f"The payment service provider rejected the payment ({code}): {exc.message}"[:1000],
        details={"payment_id": payment.public_id, "psp_code": code, "status": payment.status},
    )
    response = idempotency.StoredResponse.of_error(error)
    idempotency.complete(record_id, response)
    db.session.commit()
    log.warning("payment %s rejected by the PSP: %s", payment.public_id, code)
    return payment, response


def _expire_quietly(provider, session_id: str, public_id: str) -> None:
    try:
        provider.expire_checkout_session(session_id)
    except PspError as exc:  # reconciliation's wide pass finds it later
        log.warning("could not expire orphan session of %s: %s", public_id, exc)


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
    livemode, status_before = payment.livemode, payment.status
    db.session.commit()

    truth: CheckoutSession | None = None
    expired_here = False  # this call expired the session (not the PSP's clock, not before)
    if session_id:
        provider = get_provider(psp, livemode=livemode)
        try:
            try:
                truth = provider.expire_checkout_session(session_id)
                expired_here = True
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
        target = apply_own_session(payment, truth, source=source, reason="completed at the PSP")
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
    why = _expiry_reason(payment, source)
    if not payment.is_final:
        _fail_as_expired(payment, source, reason, why)
    elif expired_here and payment.failure_code == "expired" and why in CANCELED_REASONS:
        # The session's expired event, caused by this very call, was applied first: the
        # payment was canceled all the same, by whoever asked.
        payment.failure_reason = why
    db.session.commit()
    return payment


def _expiry_reason(payment: Payment, source: StatusSource) -> str:
    """Who stopped the payment: the merchant (API, dashboard), or its checkout window closing
    (reconciliation: by what the shopper did last, `attempts.expiry_reason`)."""
    if source in (StatusSource.API, StatusSource.DASHBOARD):
        return failure_reasons.CANCELED_BY_MERCHANT
    return expiry_reason(payment)


def _fail_as_expired(
    payment: Payment, source: StatusSource, reason: str, why: str = failure_reasons.EXPIRED
) -> None:
    transition(
        payment,
        PaymentStatus.FAILED,
        source=source,
        reason=reason,
        failure_code="expired",
        failure_message=reason,
        failure_reason=why,
    )
