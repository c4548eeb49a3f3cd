"""The interface every PSP adapter implements, and the plain data that crosses it.

The payment core sees only these types; only an adapter module imports its PSP's SDK.
"""

from __future__ import annotations

import dataclasses
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckoutRequest:
    """What the PSP needs to open a hosted checkout for one payment."""

    payment_id: str  # PayBridge's public id, sent as client_reference_id and in metadata
    merchant_reference: str
    idempotency_key: str
    amount: int
    currency: str
    description: str | None
    customer_email: str | None
    success_url: str
    cancel_url: str
    expires_at: datetime  # naive UTC
    metadata: dict[str, str] = field(default_factory=dict)
    # Subscriptions (RECC): the billing period; None for one-time payments.
    interval: str | None = None
    interval_count: int | None = None


@dataclass(frozen=True)
class PspMethod:
    """How the shopper paid (or tried to), normalised from the PSP's payment method details:
    `type` (card, sepa_debit, ideal, …) and the fields PayBridge keeps, None when not given."""

    type: str | None
    brand: str | None = None  # card brand: visa, mastercard, amex, …
    last4: str | None = None  # card or IBAN
    exp_month: int | None = None
    exp_year: int | None = None
    funding: str | None = None  # credit | debit | prepaid | unknown
    country: str | None = None  # the card's or the bank account's
    wallet: str | None = None  # apple_pay | google_pay | link | …
    three_d_secure: str | None = None  # the authentication's result: authenticated, failed, …
    mandate: str | None = None  # SEPA Direct Debit: the mandate's id at the PSP (mandate_1…)
    # The mandate's reference, as the shopper's bank statement and pre-notification show it: not
    # in the charge; learned with one more call (`PaymentProvider.retrieve_mandate_reference`).
    mandate_reference: str | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PspAttempt:
    """One try to pay a payment intent: a charge, or a decline the PSP reported."""

    outcome: str  # failed | succeeded | pending (a delayed method still processing)
    charge_id: str | None
    method: PspMethod | None
    attempted_at: datetime | None  # naive UTC
    decline_code: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


@dataclass(frozen=True)
class PspCharge:
    """A charge as its own event tells it (charge.pending / succeeded / failed): the attempt it
    is, and the payment intent it belongs to with that intent's metadata (the charge's copy)."""

    payment_intent_id: str | None  # None: a charge made without an intent
    metadata: dict[str, str]
    attempt: PspAttempt


@dataclass(frozen=True)
class PspPaymentIntent:
    """The PSP's payment intent, normalised: what it says of its attempts."""

    id: str
    status: str
    metadata: dict[str, str]
    # Its latest charge, when expanded (retrieve with latest_charge).
    latest_charge: PspAttempt | None = None
    # Its last decline (`last_payment_error`), when it has one.
    last_error: PspAttempt | None = None


@dataclass(frozen=True)
class CheckoutSession:
    """The PSP's view of a checkout, normalised."""

    id: str
    status: str  # open | complete | expired
    payment_status: str  # paid | unpaid | no_payment_required
    url: str | None
    amount_total: int | None
    currency: str | None  # upper-case ISO 4217
    client_reference_id: str | None
    metadata: dict[str, str]
    payment_intent_id: str | None
    subscription_id: str | None
    expires_at: datetime | None  # naive UTC
    created_at: datetime | None  # naive UTC
    # Known when the payment intent was expanded: tells a failed delayed payment (the session
    # stays complete/unpaid) from one still processing.
    payment_intent_status: str | None = None
    # The PSP's decline or failure code, when it gave one.
    failure_code: str | None = None
    # The payment intent's latest charge, when expanded that far (retrieves do).
    latest_charge: PspAttempt | None = None


@dataclass(frozen=True)
class PspSubscription:
    """The PSP's view of a subscription (RECC), normalised."""

    id: str
    status: str  # incomplete | active | past_due | canceled | … (the PSP's words)
    currency: str | None  # upper-case ISO 4217
    current_period_start: datetime | None  # naive UTC
    current_period_end: datetime | None  # naive UTC: the next billing date
    cancel_at_period_end: bool
    canceled_at: datetime | None
    ended_at: datetime | None
    latest_invoice_id: str | None
    metadata: dict[str, str]


@dataclass(frozen=True)
class PspInvoice:
    """One bill of a subscription, normalised: what was charged for which period."""

    id: str
    subscription_id: str | None
    status: str  # draft | open | paid | uncollectible | void
    billing_reason: str | None  # subscription_create (the checkout) | subscription_cycle | …
    amount_due: int
    amount_paid: int
    currency: str | None  # upper-case ISO 4217
    period_start: datetime | None  # the service period paid for (the invoice line's)
    period_end: datetime | None
    attempt_count: int
    created_at: datetime | None
    # The subscription's metadata as the invoice carries it (PayBridge's ids live there).
    metadata: dict[str, str]
    payment_intent_id: str | None = None  # known when the PSP gave it


@dataclass(frozen=True)
class RefundRequest:
    """What the PSP needs to refund (part of) one paid payment."""

    refund_id: str  # PayBridge's public refund id, sent in metadata
    payment_id: str  # PayBridge's public payment id, sent in metadata
    payment_intent_id: str
    idempotency_key: str  # derived from the refund: every retry reuses it
    amount: int
    currency: str
    reason: str | None = None  # duplicate | fraudulent | requested_by_customer


@dataclass(frozen=True)
class PspRefund:
    """The PSP's view of a refund, normalised."""

    id: str
    status: str  # pending | succeeded | failed | canceled | requires_action
    amount: int
    currency: str | None  # upper-case ISO 4217
    payment_intent_id: str | None
    charge_id: str | None
    failure_reason: str | None
    metadata: dict[str, str]
    created_at: datetime | None  # naive UTC
    reason: str | None = None  # duplicate | fraudulent | requested_by_customer | …


@dataclass(frozen=True)
class PspChargeRefunds:
    """What a charge event says of the charge's refunds: their running total. Stripe's API
    lists the refunds themselves in the charge no more (since 2022-11-15); each comes in its
    own refund event, or from `list_refunds`."""

    charge_id: str
    payment_intent_id: str | None
    amount_refunded: int  # pending and succeeded refunds (a failed one gives its amount back)
    currency: str | None  # upper-case ISO 4217


@dataclass(frozen=True)
class PspDispute:
    """The PSP's view of a dispute, normalised."""

    id: str
    status: str  # needs_response | under_review | won | lost | warning_* | prevented
    amount: int
    currency: str | None  # upper-case ISO 4217
    reason: str | None
    charge_id: str | None
    payment_intent_id: str | None
    evidence_due_by: datetime | None  # naive UTC
    has_evidence: bool
    past_due: bool
    submission_count: int
    livemode: bool
    created_at: datetime | None  # naive UTC
    # The text evidence the PSP holds (Stripe's `evidence.uncategorized_text`): how a retried
    # answer whose first reply was lost knows its text is already there.
    evidence_text: str | None = None


@dataclass(frozen=True)
class PspEventData:
    """A verified PSP event: its id, type, creation time, and the session it is about."""

    id: str
    type: str
    created_at: datetime  # naive UTC
    session: CheckoutSession | None  # None when the event is not about a checkout session
    raw: dict  # the whole event as JSON, to store
    # The refunds the event reports (a refund object, or the refund list of a charge that
    # carries one: API versions before 2022-11-15, or expanded).
    refunds: tuple[PspRefund, ...] = ()
    # Set when the event is about a charge (charge.refunded): its refund total.
    charge: PspChargeRefunds | None = None
    # Set when the event is about an invoice or a subscription (RECC renewals, cancellation).
    invoice: PspInvoice | None = None
    subscription: PspSubscription | None = None
    # Set when the event is about a dispute (charge.dispute.*).
    dispute: PspDispute | None = None
    # Set when the event is about a payment intent (payment_intent.payment_failed).
    payment_intent: PspPaymentIntent | None = None
    # Set when the event is about a charge (charge.succeeded, …): the attempt it is.
    charge_attempt: PspCharge | None = None
    # Stripe's mode of the event (and of what it is about): it must be the mode of the payment
    # it names, or it is stored and never applied.
    livemode: bool = False


@dataclass(frozen=True)
class PspWebhookEndpoint:
    """A webhook endpoint registered at the PSP: where it sends which events."""

    id: str
    url: str
    enabled_events: tuple[str, ...]
    enabled: bool
    api_version: str | None  # the version events are rendered in (None: the account's)
    metadata: dict[str, str]
    livemode: bool
    created_at: datetime | None  # naive UTC
    secret: str | None = None  # the signing secret: shown by the PSP only when it creates one


class PspError(Exception):
    """A PSP call failed. `retryable` says whether the same call may succeed later."""

    retryable = False

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status


class PspRejected(PspError):
    """The PSP refused the request itself (invalid parameters, card error): do not retry."""


class PspNotFound(PspError):
    """The PSP has no such object."""


class PspUnavailable(PspError):
    """Connection failure, timeout, rate limit, 5xx, auth trouble or open circuit: retry later."""

    retryable = True


class PspRateLimited(PspUnavailable):
    """The PSP answered 429: PayBridge (this PSP account) sends too much. The PSP is up; the
    same call succeeds a little later. Not a failure of the PSP: it never opens the breaker."""


class PspInvalidState(PspError):
    """The object exists but cannot do this now (e.g. expiring a completed session)."""


class PspModeNotConfigured(PspError):
    """The PSP mode asked for (test or live) has no key in this deployment."""

    def __init__(self, livemode: bool):
        mode = "live" if livemode else "test"
        super().__init__(f"{mode} mode is not configured (STRIPE_{mode.upper()}_SECRET_KEY)")
        self.livemode = livemode


class WebhookVerificationError(Exception):
    """The webhook's signature, timestamp or payload is not acceptable."""


class WebhookPayloadError(WebhookVerificationError):
    """Correctly signed, but the body is not an event the PSP would send."""


class PaymentProvider(ABC):
    """One PSP. Implementations must be safe to share between threads."""

    name: str
    # Stripe's mode: live (real money) or test; each mode has its own keys, objects and events.
    livemode: bool = False
    # The shortest time a new checkout session may have left before its expires_at: a
    # registration attempted later than that is refused by the PSP (Stripe: 30 minutes).
    min_checkout_window: timedelta = timedelta(0)

    @abstractmethod
    def create_checkout_session(self, request: CheckoutRequest) -> CheckoutSession: ...

    @abstractmethod
    def retrieve_checkout_session(self, session_id: str) -> CheckoutSession: ...

    @abstractmethod
    def expire_checkout_session(self, session_id: str) -> CheckoutSession: ...

    def retrieve_payment_intent(self, payment_intent_id: str) -> PspPaymentIntent:
        """The payment intent with its latest charge (how the shopper paid)."""
        raise PspRejected(f"{self.name} cannot retrieve payment intents", code="unsupported")

    def retrieve_mandate_reference(self, mandate_id: str) -> str | None:
        """The reference of a debit's mandate (`PspMethod.mandate` names it), or None when the
        PSP gives none."""
        raise PspRejected(f"{self.name} cannot retrieve mandates", code="unsupported")

    @abstractmethod
    def list_checkout_sessions(
        self, created_since: datetime, created_before: datetime | None = None
    ) -> Iterator[CheckoutSession]:
        """Every session created at or after `created_since` (and before `created_before`),
        following the PSP's pagination."""

    @abstractmethod
    def list_events(self, types: list[str], created_since: datetime) -> Iterator[PspEventData]:
        """The PSP's events of these types since a time (to catch up on missed webhooks)."""

    @abstractmethod
    def create_refund(self, request: RefundRequest) -> PspRefund:
        """Refund (part of) a paid payment with the refund's own idempotency key."""

    @abstractmethod
    def retrieve_refund(self, refund_id: str) -> PspRefund: ...

    @abstractmethod
    def list_refunds(self, payment_intent_id: str) -> Iterator[PspRefund]:
        """Every refund of a payment intent (to find one whose creation answer was lost)."""

    def find_refund_made_for(self, request: RefundRequest) -> PspRefund | None:
        """The refund an earlier attempt of `request` made at the PSP, found by the
        `paybridge_refund_id` PayBridge put in its metadata (an idempotency key replays it only
        for a day), or None."""
        for refund in self.list_refunds(request.payment_intent_id):
            if refund.metadata.get("paybridge_refund_id") == request.refund_id:
                log.info("refund %s found at the PSP as %s", request.refund_id, refund.id)
                return refund
        return None

    @abstractmethod
    def verify_webhook(self, payload: bytes, signature_header: str | None) -> PspEventData:
        """Check the signature over the raw body and parse it; raise WebhookVerificationError."""

    # -- subscriptions (RECC); an adapter without them answers PspRejected ----------------------

    def retrieve_subscription(self, subscription_id: str) -> PspSubscription:
        """The subscription's current state."""
        raise PspRejected(f"{self.name} does not support subscriptions", code="unsupported")

    def cancel_subscription(self, subscription_id: str, *, at_period_end: bool) -> PspSubscription:
        """End it now, or at the end of the paid period (at_period_end)."""
        raise PspRejected(f"{self.name} does not support subscriptions", code="unsupported")

    def list_subscription_invoices(self, subscription_id: str, *, limit: int) -> list[PspInvoice]:
        """The subscription's latest invoices, newest first (at most `limit`)."""
        raise PspRejected(f"{self.name} does not support subscriptions", code="unsupported")

    def retrieve_invoice(self, invoice_id: str) -> PspInvoice:
        """One invoice, with the payment intent that paid it when there is one."""
        raise PspRejected(f"{self.name} does not support subscriptions", code="unsupported")

    # -- disputes; an adapter without them answers PspRejected ----------------------------------

    def update_dispute(
        self, dispute_id: str, *, evidence: dict[str, str], submit: bool
    ) -> PspDispute:
        """Give the dispute evidence, and submit it to the card network (`submit`)."""
        raise PspRejected(f"{self.name} does not support disputes", code="unsupported")

    def retrieve_dispute(self, dispute_id: str) -> PspDispute:
        """The dispute's current state."""
        raise PspRejected(f"{self.name} does not support disputes", code="unsupported")

    def close_dispute(self, dispute_id: str) -> PspDispute:
        """Accept the dispute: the merchant does not contest it (it is lost)."""
        raise PspRejected(f"{self.name} does not support disputes", code="unsupported")

    def charge_payment_intent(self, charge_id: str) -> str | None:
        """The payment intent of a charge (a dispute that names only its charge)."""
        raise PspRejected(f"{self.name} does not support disputes", code="unsupported")

    # -- the account's own setup (`flask stripe setup` / `check`); an adapter without it answers
    # PspRejected ------------------------------------------------------------------------------

    # The API version every call and every webhook endpoint uses (None: the PSP has none).
    api_version: str | None = None

    def key_livemode(self) -> bool:
        """The mode the PSP says this adapter's key is of (a refused key: PspError, 401)."""
        raise PspRejected(f"{self.name} cannot check its key", code="unsupported")

    def list_webhook_endpoints(self) -> list[PspWebhookEndpoint]:
        """Every webhook endpoint of this mode, newest first."""
        raise PspRejected(f"{self.name} has no webhook endpoints to set up", code="unsupported")

    def create_webhook_endpoint(
        self, url: str, events: list[str], *, description: str
    ) -> PspWebhookEndpoint:
        """A new endpoint at the adapter's API version; the answer carries its secret."""
        raise PspRejected(f"{self.name} has no webhook endpoints to set up", code="unsupported")

    def update_webhook_endpoint(
        self,
        endpoint_id: str,
        *,
        events: list[str] | None = None,
        enabled: bool | None = None,
        metadata: dict[str, str] | None = None,
    ) -> PspWebhookEndpoint:
        """Change what the endpoint listens to, whether it is enabled, or add metadata."""
        raise PspRejected(f"{self.name} has no webhook endpoints to set up", code="unsupported")

    def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        raise PspRejected(f"{self.name} has no webhook endpoints to set up", code="unsupported")
