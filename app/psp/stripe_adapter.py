"""The Stripe adapter: the only module that imports `stripe` (SDK 16.x, StripeClient).

Every call goes through one circuit breaker, is timed, and has its Stripe errors mapped to the
PSP interface's errors: the payment core never sees a Stripe class.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import pybreaker
import stripe

from app.metrics import PSP_CALL_SECONDS, PSP_ERRORS
from app.psp.base import (
    CheckoutRequest,
    CheckoutSession,
    PaymentProvider,
    PspError,
    PspEventData,
    PspInvalidState,
    PspNotFound,
    PspRejected,
    PspUnavailable,
    WebhookVerificationError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# Stripe keeps at most 50 metadata keys; PayBridge's own two always go first.
STRIPE_METADATA_MAX_KEYS = 50
PAGE_SIZE = 100


def to_unix(value: datetime) -> int:
    """Naive UTC datetime → unix seconds."""
    return int(value.replace(tzinfo=UTC).timestamp())


def from_unix(value: int | None) -> datetime | None:
    """Unix seconds → naive UTC datetime."""
    if value is None:
        return None
    return datetime.fromtimestamp(int(value), UTC).replace(tzinfo=None)


class _Breaker(pybreaker.CircuitBreaker):
    """pybreaker's breaker without its lock around the guarded call.

    pybreaker holds one RLock for the whole call, which would serialise every Stripe request
    of a threaded worker; state changes (open/half-open/close) still take the lock.
    """

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._lock:
            state = self.state
        return state.call(func, *args, **kwargs)


def _field(obj: Any, name: str) -> Any:
    """A StripeObject's field, or None (StripeObject has no .get in SDK ≥15)."""
    if obj is None:
        return None
    try:
        return obj[name] if name in obj else None
    except TypeError:
        return None


def _id_of(value: Any) -> str | None:
    """An expandable field's id, whether Stripe sent the id or the expanded object."""
    if value is None or isinstance(value, str):
        return value
    return _field(value, "id")


def session_from_stripe(obj: Any) -> CheckoutSession:
    """Normalise a Stripe checkout.session (StripeObject) to the interface's CheckoutSession."""
    intent = _field(obj, "payment_intent")
    intent_status = None
    failure_code = None
    if intent is not None and not isinstance(intent, str):
        intent_status = _field(intent, "status")
        last_error = _field(intent, "last_payment_error")
        if last_error is not None:
            failure_code = _field(last_error, "decline_code") or _field(last_error, "code")
    metadata = _field(obj, "metadata")
    currency = _field(obj, "currency")
    return CheckoutSession(
        id=obj["id"],
        status=_field(obj, "status") or "open",
        payment_status=_field(obj, "payment_status") or "unpaid",
        url=_field(obj, "url"),
        amount_total=_field(obj, "amount_total"),
        currency=currency.upper() if currency else None,
        client_reference_id=_field(obj, "client_reference_id"),
        metadata={str(k): str(v) for k, v in (metadata.to_dict() if metadata else {}).items()},
        payment_intent_id=_id_of(intent),
        subscription_id=_id_of(_field(obj, "subscription")),
        expires_at=from_unix(_field(obj, "expires_at")),
        created_at=from_unix(_field(obj, "created")),
        payment_intent_status=intent_status,
        failure_code=failure_code,
    )


def event_from_stripe(event: Any, raw: dict | None = None) -> PspEventData:
    """Normalise a Stripe Event; the session is parsed when data.object is a checkout.session."""
    data_object = _field(_field(event, "data"), "object")
    session = None
    if data_object is not None and _field(data_object, "object") == "checkout.session":
        session = session_from_stripe(data_object)
    return PspEventData(
        id=event["id"],
        type=event["type"],
        created_at=from_unix(_field(event, "created")) or datetime.now(UTC).replace(tzinfo=None),
        session=session,
        raw=raw if raw is not None else event.to_dict(),
    )


def map_stripe_error(error: stripe.StripeError, *, creating: bool = False) -> PspError:
    """Translate a Stripe SDK error to the PSP interface's error classes."""
    status = getattr(error, "http_status", None)
    code = getattr(error, "code", None)
    message = getattr(error, "user_message", None) or str(error) or type(error).__name__
    if isinstance(error, stripe.CardError):
        return PspRejected(message, code=code or "card_error", http_status=status)
    if isinstance(error, stripe.InvalidRequestError):
        if status == 404 and not creating:
            return PspNotFound(message, code=code or "resource_missing", http_status=status)
        lowered = message.lower()
        if status == 400 and ("can be expired" in lowered or "can only expire" in lowered):
            return PspInvalidState(message, code=code or "invalid_state", http_status=status)
        return PspRejected(message, code=code or "invalid_request_error", http_status=status)
    if isinstance(
        error,
        stripe.AuthenticationError
        | stripe.PermissionError
        | stripe.RateLimitError
        | stripe.APIConnectionError
        | stripe.APIError,
    ):
        return PspUnavailable(message, code=code or type(error).__name__, http_status=status)
    # IdempotencyError (our own parameters changed under one key) and anything new: not the
    # payment's fault and not worth a blind retry.
    return PspError(message, code=code or type(error).__name__, http_status=status)


class StripeProvider(PaymentProvider):
    """Stripe Checkout through the official SDK, pointed at STRIPE_API_BASE."""

    name = "stripe"

    def __init__(
        self,
        secret_key: str,
        *,
        api_base: str,
        webhook_secrets: list[str],
        webhook_tolerance: int = 300,
        timeout_seconds: float = 10.0,
        max_network_retries: int = 2,
        breaker_fail_max: int = 5,
        breaker_reset_seconds: float = 30,
    ) -> None:
        if not secret_key:
            raise ValueError("StripeProvider needs a secret key (STRIPE_SECRET_KEY)")
        self.client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base},
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout_seconds),
        )
        self.webhook_secrets = list(webhook_secrets)
        self.webhook_tolerance = webhook_tolerance
        self.breaker = _Breaker(
            fail_max=breaker_fail_max,
            reset_timeout=breaker_reset_seconds,
            # Only an unreachable PSP trips the circuit: a rejected or unknown object is an
            # answer, and resets the failure count like any success.
            exclude=[lambda exc: not isinstance(exc, PspUnavailable)],
            name="stripe",
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> StripeProvider:
        """Build from the app's configuration (app.config or a Config object's dict)."""
        return cls(
            config["STRIPE_SECRET_KEY"],
            api_base=config["STRIPE_API_BASE"],
            webhook_secrets=config["STRIPE_WEBHOOK_SECRETS"],
            webhook_tolerance=config["STRIPE_WEBHOOK_TOLERANCE_SECONDS"],
            timeout_seconds=config["STRIPE_TIMEOUT_SECONDS"],
            max_network_retries=config["STRIPE_MAX_NETWORK_RETRIES"],
            breaker_fail_max=config["PSP_BREAKER_FAIL_MAX"],
            breaker_reset_seconds=config["PSP_BREAKER_RESET_SECONDS"],
        )

    # -- the guarded call ------------------------------------------------------------------

    def _call(self, operation: str, func: Callable[[], T], *, creating: bool = False) -> T:
        """Run one Stripe request through the breaker, timed, with its errors mapped."""

        def guarded() -> T:
            try:
                return func()
            except stripe.StripeError as exc:
                raise map_stripe_error(exc, creating=creating) from exc

        started = time.perf_counter()
        try:
            return self.breaker.call(guarded)
        except pybreaker.CircuitBreakerError as exc:
            PSP_ERRORS.labels(self.name, operation, "circuit_open").inc()
            log.warning("stripe %s refused: circuit open", operation)
            message = "circuit open: Stripe failed repeatedly"
            raise PspUnavailable(message, code="circuit_open") from exc
        except PspError as exc:
            PSP_ERRORS.labels(self.name, operation, type(exc).__name__).inc()
            log.warning(
                "stripe %s failed: %s (code=%s, http=%s)",
                operation,
                type(exc).__name__,
                exc.code,
                exc.http_status,
            )
            raise
        finally:
            PSP_CALL_SECONDS.labels(self.name, operation).observe(time.perf_counter() - started)

    # -- the interface ---------------------------------------------------------------------

    def create_checkout_session(self, request: CheckoutRequest) -> CheckoutSession:
        """Open a hosted checkout (payment, or subscription for RECC) with the payment's key."""
        params = self.checkout_params(request)
        session = self._call(
            "create_session",
            lambda: self.client.v1.checkout.sessions.create(
                params=params, options={"idempotency_key": request.idempotency_key}
            ),
            creating=True,
        )
        return session_from_stripe(session)

    @staticmethod
    def checkout_params(request: CheckoutRequest) -> dict[str, Any]:
        """The create parameters; identical for every retry of one payment (idempotency)."""
        price_data: dict[str, Any] = {
            "currency": request.currency.lower(),
            "unit_amount": request.amount,
            "product_data": {"name": request.description or f"Order {request.merchant_reference}"},
        }
        subscription = request.interval is not None
        if subscription:
            price_data["recurring"] = {
                "interval": request.interval,
                "interval_count": request.interval_count or 1,
            }
        ours = {
            "paybridge_payment_id": request.payment_id,
            "merchant_reference": request.merchant_reference,
        }
        theirs = [(k, v) for k, v in request.metadata.items() if k not in ours]
        metadata = dict(ours)
        metadata.update(theirs[: STRIPE_METADATA_MAX_KEYS - len(ours)])
        params: dict[str, Any] = {
            "mode": "subscription" if subscription else "payment",
            "line_items": [{"price_data": price_data, "quantity": 1}],
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "client_reference_id": request.payment_id,
            "metadata": metadata,
            "expires_at": to_unix(request.expires_at),
        }
        if request.customer_email:
            params["customer_email"] = request.customer_email
        if not subscription:
            # The payment intent carries our id too, so its events can be traced back.
            params["payment_intent_data"] = {"metadata": dict(ours)}
        return params

    def retrieve_checkout_session(self, session_id: str) -> CheckoutSession:
        """The session's current state, with its payment intent expanded."""
        session = self._call(
            "retrieve_session",
            lambda: self.client.v1.checkout.sessions.retrieve(
                session_id, {"expand": ["payment_intent"]}
            ),
        )
        return session_from_stripe(session)

    def expire_checkout_session(self, session_id: str) -> CheckoutSession:
        """Expire an open session; PspInvalidState when it is already complete or expired."""
        session = self._call(
            "expire_session",
            lambda: self.client.v1.checkout.sessions.expire(session_id),
        )
        return session_from_stripe(session)

    def list_checkout_sessions(self, created_since: datetime) -> Iterator[CheckoutSession]:
        """Every session created at or after `created_since`, newest first, page by page."""
        params = {"created": {"gte": to_unix(created_since)}, "limit": PAGE_SIZE}
        page = self._call("list_sessions", lambda: self.client.v1.checkout.sessions.list(params))
        yield from self._pages(page, "list_sessions", session_from_stripe)

    def list_events(self, types: list[str], created_since: datetime) -> Iterator[PspEventData]:
        """The PSP's events of these types since a time, newest first, page by page."""
        params: dict[str, Any] = {"created": {"gte": to_unix(created_since)}, "limit": PAGE_SIZE}
        if types:
            params["types"] = list(types)
        page = self._call("list_events", lambda: self.client.v1.events.list(params))
        yield from self._pages(page, "list_events", event_from_stripe)

    def _pages(self, page: Any, operation: str, convert: Callable[[Any], T]) -> Iterator[T]:
        """Follow a ListObject's pages (the SDK's next_page), each request guarded."""
        while True:
            for item in page.data:
                yield convert(item)
            if not page.has_more or not page.data:
                return
            current = page
            page = self._call(operation, current.next_page)

    def verify_webhook(self, payload: bytes, signature_header: str | None) -> PspEventData:
        """Check Stripe-Signature against each configured secret (rotation), then parse."""
        if not signature_header:
            raise WebhookVerificationError("no Stripe-Signature header")
        if not self.webhook_secrets:
            raise WebhookVerificationError("no webhook secret configured")
        last_error: Exception | None = None
        for secret in self.webhook_secrets:
            try:
                event = stripe.Webhook.construct_event(
                    payload, signature_header, secret, tolerance=self.webhook_tolerance
                )
            except stripe.SignatureVerificationError as exc:
                last_error = exc
                continue
            except ValueError as exc:  # not JSON, or not a v1 snapshot event
                raise WebhookVerificationError(f"payload is not a valid event: {exc}") from exc
            try:
                raw = json.loads(payload)
                return event_from_stripe(event, raw)
            except (KeyError, TypeError, ValueError) as exc:
                raise WebhookVerificationError(f"payload is not a valid event: {exc}") from exc
        raise WebhookVerificationError(f"signature verification failed: {last_error}")
