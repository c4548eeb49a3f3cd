"""Helpers for dashboard tests: users, payments with their history, CSRF-aware log-in."""

from __future__ import annotations

import functools
import re
from datetime import datetime, timedelta
from uuid import uuid4

from app.extensions import db
from app.models import (
    Notification,
    NotificationAttempt,
    Payment,
    PaymentStatusChange,
    User,
    utcnow,
)

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')

PATHS = {
    "CREATED": ["CREATED"],
    "INITIATED": ["CREATED", "INITIATED"],
    "PENDING": ["CREATED", "INITIATED", "PENDING"],
    "SUCCESS": ["CREATED", "INITIATED", "SUCCESS"],
    "FAILED": ["CREATED", "INITIATED", "FAILED"],
}


@functools.cache
def _password_hash() -> str:
    # Hashing is deliberately slow; every test user shares one hash of PASSWORD.
    from werkzeug.security import generate_password_hash

    return generate_password_hash(PASSWORD)


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def make_user(app, merchant_id: int | None, email: str, *, operator: bool = False) -> int:
    with app.app_context():
        user = User(
            email=email,
            role=User.ROLE_OPERATOR if operator else User.ROLE_MERCHANT,
            merchant_id=merchant_id,
        )
        user.password_hash = _password_hash()
        db.session.add(user)
        db.session.commit()
        return user.id


def login(client, email: str, password: str = PASSWORD):
    page = client.get("/dashboard/login")
    token = csrf_from(page.get_data(as_text=True))
    return client.post(
        "/dashboard/login",
        data={"email": email, "password": password, "csrf_token": token},
    )


def token_for(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return csrf_from(response.get_data(as_text=True))


def add_payment(
    merchant_id: int,
    *,
    status: str = "SUCCESS",
    amount: int = 1000,
    currency: str = "EUR",
    payment_type: str = "SALE",
    reference: str | None = None,
    email: str | None = None,
    created_at: datetime | None = None,
    session_id: str | None = None,
    updated_at: datetime | None = None,
) -> Payment:
    """A payment row with a history consistent with its status (the real path is covered by
    the payment core's and webhooks' tests; the dashboard only reads these rows)."""
    created_at = created_at or utcnow()
    payment = Payment(
        merchant_id=merchant_id,
        merchant_reference=reference or f"ref-{uuid4().hex[:12]}",
        amount=amount,
        currency=currency,
        payment_type=payment_type,
        interval="month" if payment_type == "RECC" else None,
        customer_email=email,
        success_url="https://shop.example/ok",
        cancel_url="https://shop.example/cancel",
        metadata_={},
        status=status,
        status_version=len(PATHS[status]),
        psp_session_id=session_id,
        created_at=created_at,
        updated_at=updated_at or created_at,
        finalized_at=created_at + timedelta(minutes=3) if status in ("SUCCESS", "FAILED") else None,
    )
    db.session.add(payment)
    previous = None
    for version, step in enumerate(PATHS[status], start=1):
        db.session.add(
            PaymentStatusChange(
                payment=payment,
                from_status=previous,
                to_status=step,
                status_version=version,
                source="api" if step in ("CREATED", "INITIATED") else "webhook",
                reason="created" if step == "CREATED" else f"moved to {step}",
                psp_event_id=f"evt_{uuid4().hex[:16]}" if step in ("SUCCESS", "FAILED") else None,
                created_at=created_at + timedelta(minutes=version - 1),
            )
        )
        previous = step
    db.session.flush()
    return payment


def add_notification(payment: Payment, *, status: str, attempts: list[int | None]) -> Notification:
    note = Notification(
        merchant_id=payment.merchant_id,
        payment_id=payment.id,
        event_type="payment.succeeded" if payment.status == "SUCCESS" else "payment.failed",
        status_version=payment.status_version,
        payload={"type": "payment.succeeded", "data": {"id": payment.public_id}},
        status=status,
        attempt_count=len(attempts),
        delivered_at=utcnow() if status == "delivered" else None,
        last_error="HTTP 500" if status == "failed" else None,
    )
    db.session.add(note)
    for code in attempts:
        db.session.add(
            NotificationAttempt(
                notification=note,
                status_code=code,
                error=None if code and code < 300 else f"HTTP {code}",
                duration_ms=12,
            )
        )
    db.session.flush()
    return note


def bulk_payments(merchant_id: int, count: int, *, start: datetime, status: str = "FAILED") -> None:
    """Many bare payment rows in one INSERT (for size tests; no history needed)."""
    from sqlalchemy import insert

    from app.models.payment import new_payment_id

    rows = [
        {
            "public_id": new_payment_id(),
            "merchant_id": merchant_id,
            "merchant_reference": f"many-{i:05d}",
            "amount": 100 + i,
            "currency": "EUR",
            "payment_type": "SALE",
            "success_url": "https://shop.example/ok",
            "cancel_url": "https://shop.example/cancel",
            "metadata_": {},
            "status": status,
            "status_version": 3,
            "created_at": start - timedelta(seconds=i),
            "updated_at": start - timedelta(seconds=i),
        }
        for i in range(count)
    ]
    db.session.execute(insert(Payment), rows)
