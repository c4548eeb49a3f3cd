"""Payment service providers: one interface (base.py), one adapter module per PSP."""

from app.psp.base import (
    CheckoutRequest,
    CheckoutSession,
    PaymentProvider,
    PspError,
    PspEventData,
    PspInvalidState,
    PspModeNotConfigured,
    PspNotFound,
    PspRateLimited,
    PspRejected,
    PspUnavailable,
    WebhookPayloadError,
    WebhookVerificationError,
)
from app.psp.factory import configured_modes, get_provider

__all__ = [
    "CheckoutRequest",
    "CheckoutSession",
    "PaymentProvider",
    "PspError",
    "PspEventData",
    "PspInvalidState",
    "PspModeNotConfigured",
    "PspNotFound",
    "PspRateLimited",
    "PspRejected",
    "PspUnavailable",
    "WebhookPayloadError",
    "WebhookVerificationError",
    "configured_modes",
    "get_provider",
]
