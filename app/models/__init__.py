"""All models, imported here so Alembic and the app see every table."""

from app.models.base import utcnow
from app.models.events import Notification, NotificationAttempt, PspEvent, ReconciliationRun
from app.models.merchant import ApiKey, AuditLog, Merchant, User
from app.models.payment import IdempotencyRecord, Payment, PaymentConflict, PaymentStatusChange
from app.models.refund import Refund
from app.models.subscription import Subscription, SubscriptionCharge

__all__ = [
    "ApiKey",
    "AuditLog",
    "IdempotencyRecord",
    "Merchant",
    "Notification",
    "NotificationAttempt",
    "Payment",
    "PaymentConflict",
    "PaymentStatusChange",
    "PspEvent",
    "ReconciliationRun",
    "Refund",
    "Subscription",
    "SubscriptionCharge",
    "User",
    "utcnow",
]
