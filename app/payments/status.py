"""The five payment statuses and the one table of moves allowed between them (DESIGN.md)."""

from __future__ import annotations

from enum import StrEnum


class PaymentStatus(StrEnum):
    CREATED = "CREATED"
    INITIATED = "INITIATED"
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


class PaymentType(StrEnum):
    SALE = "SALE"
    RECC = "RECC"


class StatusSource(StrEnum):
    """Who caused a status change; stored on every history row."""

    API = "api"
    WEBHOOK = "webhook"
    RETURN = "return"
    RECON = "recon"
    DASHBOARD = "dashboard"


FINAL_STATUSES = frozenset({PaymentStatus.SUCCESS, PaymentStatus.FAILED})

ALLOWED_TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.CREATED: frozenset({PaymentStatus.INITIATED, PaymentStatus.FAILED}),
    PaymentStatus.INITIATED: frozenset(
        {PaymentStatus.PENDING, PaymentStatus.SUCCESS, PaymentStatus.FAILED}
    ),
    PaymentStatus.PENDING: frozenset({PaymentStatus.SUCCESS, PaymentStatus.FAILED}),
    PaymentStatus.SUCCESS: frozenset(),
    PaymentStatus.FAILED: frozenset(),
}

# How far along a payment is; a move to a lower rank is "backwards" (a late, stale event).
PROGRESS_RANK = {
    PaymentStatus.CREATED: 0,
    PaymentStatus.INITIATED: 1,
    PaymentStatus.PENDING: 2,
    PaymentStatus.SUCCESS: 3,
    PaymentStatus.FAILED: 3,
}


def is_allowed(current: PaymentStatus, target: PaymentStatus) -> bool:
    return target in ALLOWED_TRANSITIONS[current]
