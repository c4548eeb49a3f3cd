"""Rows of every kind retention purges, as old as a test needs (in the caller's app context;
the caller commits)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from app.extensions import db
from app.models import (
    EndpointTestEvent,
    IdempotencyRecord,
    Notification,
    NotificationAttempt,
    Payment,
    PspEvent,
    ReconciliationRun,
    utcnow,
)


def ago(*, days: float = 0, hours: float = 0) -> datetime:
    return utcnow() - timedelta(days=days, hours=hours)


def key_record(merchant_id: int, age: timedelta, state: str, key: str | None = None):
    row = IdempotencyRecord(
        merchant_id=merchant_id,
        idempotency_key=key or f"key-{secrets.token_hex(6)}",
        method="POST",
        path="/api/v1/payments",
        request_fingerprint="f" * 64,
        state=state,
        created_at=utcnow() - age,
    )
    db.session.add(row)
    return row


def notification(payment: Payment, *, days: float, status: str, attempts: int = 1):
    """A notification created `days` ago (delivered an hour later when delivered), with
    `attempts` attempts."""
    created = ago(days=days)
    note = Notification(
        merchant_id=payment.merchant_id,
        payment_id=payment.id,
        livemode=payment.livemode,
        event_type="payment.succeeded",
        status_version=payment.status_version,
        payload={"type": "payment.succeeded", "data": {"id": payment.public_id}},
        status=status,
        attempt_count=attempts,
        delivered_at=created + timedelta(hours=1) if status == "delivered" else None,
        next_attempt_at=None if status != "pending" else utcnow(),
        created_at=created,
        updated_at=created,
    )
    db.session.add(note)
    for i in range(attempts):
        ok = status == "delivered" and i == attempts - 1
        db.session.add(
            NotificationAttempt(
                notification=note,
                attempted_at=created + timedelta(minutes=i),
                status_code=200 if ok else 503,
                error=None if ok else "HTTP 503",
            )
        )
    return note


def psp_event(payment: Payment | None, *, days: float, event_id: str | None = None):
    event_id = event_id or f"evt_{secrets.token_hex(12)}"
    row = PspEvent(
        event_id=event_id,
        event_type="checkout.session.completed",
        payment_id=payment.id if payment else None,
        psp_session_id=payment.psp_session_id if payment else None,
        payload={"id": event_id, "type": "checkout.session.completed"},
        received_at=ago(days=days),
        outcome=PspEvent.OUTCOME_APPLIED,
    )
    db.session.add(row)
    return row


def recon_run(*, days: float, status: str = "succeeded", watermark_days: float | None = None):
    started = ago(days=days)
    row = ReconciliationRun(
        started_at=started,
        finished_at=None if status == "running" else started + timedelta(seconds=3),
        status=status,
        trigger="schedule",
        details=[{"payment": "pay_x", "from": "INITIATED", "to": "SUCCESS", "why": "paid"}],
        sessions_compared_until=None if watermark_days is None else ago(days=watermark_days),
    )
    db.session.add(row)
    return row


def test_event(endpoint, *, days: float):
    """A test event sent to `endpoint` `days` ago, with its request and response kept."""
    row = EndpointTestEvent(
        merchant_id=endpoint.merchant_id,
        endpoint_id=endpoint.id,
        event_type="payment.succeeded",
        url=endpoint.url,
        sent_at=ago(days=days),
        ok=True,
        status_code=200,
        request_body='{"test": true}',
        response_body="ok",
    )
    db.session.add(row)
    return row
