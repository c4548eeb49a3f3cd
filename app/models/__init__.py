"""All models, imported here so Alembic and the app see every table."""

from app.models.attempt import PaymentAttempt
from app.models.base import iso, utcnow
from app.models.dispute import Dispute, DisputeState
from app.models.endpoint import EndpointTestEvent, NotificationDelivery, NotificationEndpoint
from app.models.events import Notification, NotificationAttempt, PspEvent, ReconciliationRun
from app.models.merchant import ApiKey, AuditLog, DashboardSession, Merchant, User
from app.models.payment import (
    FINAL_STATUSES,
    IdempotencyRecord,
    Payment,
    PaymentConflict,
    PaymentStatus,
    PaymentStatusChange,
    PaymentType,
    RefundState,
    StatusSource,
)
from app.models.refund import Refund, RefundStatus
from app.models.rollup import PaymentRollup, RollupWatermark
from app.models.subscription import Subscription, SubscriptionCharge, SubscriptionStatus

__all__ = [
    "FINAL_STATUSES",
    "PaymentStatus",
    "PaymentType",
    "RefundState",
    "RefundStatus",
    "PaymentRollup",
    "RollupWatermark",
    "StatusSource",
    "SubscriptionStatus",
    "iso",
    "ApiKey",
    "AuditLog",
    "DashboardSession",
    "Dispute",
    "DisputeState",
    "EndpointTestEvent",
    "IdempotencyRecord",
    "Merchant",
    "Notification",
    "NotificationAttempt",
    "NotificationDelivery",
    "NotificationEndpoint",
    "Payment",
    "PaymentAttempt",
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
