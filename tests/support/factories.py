"""The one place that makes test data: merchants, users, payments in each status the tests
need, notifications and conflicts. `tests/conftest.py` exposes the common ones as fixtures
(`make_merchant`, `make_payment`, `registered_payment`, `paid_payment`, ...).

Two kinds of function, told apart by their first parameter:
- those taking `app` (and `emulator`) open their own app contexts, commit, and return plain
  values (a merchant detached from its session, a `PaymentRef`);
- the others work in the caller's app context and flush, as services do: the caller commits.

Payments come four ways, as the tests need them:
- `register_payment` / `registered_payment`: through the payment core, registered at the
  emulator (INITIATED); `paid_payment` then pays the session there and applies it, as the
  shopper's return does (SUCCESS); `paid_after_failed` builds a real paid-after-failed conflict;
- `record_payment` / `make_payment`: a row moved through the state machine (its history, and
  the notification of a final status) with a made-up PSP session, no PSP involved;
- `add_payment`: a row with an invented but consistent history and any timestamps, for pages
  and lists that only read payments;
- `add_payment_row`: a bare row (no history) for tests that set columns themselves.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import uuid4

from sqlalchemy import insert, select

from app.extensions import db
from app.models import (
    ApiKey,
    Merchant,
    Notification,
    NotificationAttempt,
    NotificationDelivery,
    NotificationEndpoint,
    Payment,
    PaymentConflict,
    PaymentStatus,
    PaymentStatusChange,
    Refund,
    StatusSource,
    User,
    utcnow,
)
from app.models.merchant import new_signing_secret
from app.models.payment import new_payment_id
from app.notifications.event_types import LEGACY_EVENT_TYPES
from app.payments.psp_facts import apply_session
from app.payments.service import create_payment
from app.payments.state import lock_payment, record_creation, transition
from app.psp import get_provider
from app.psp_events.intake import process_event
from tests.support.psp import pay_session

SUCCESS_URL = "https://shop.example/ok"
CANCEL_URL = "https://shop.example/cancel"
PASSWORD = "correct horse battery"  # every test user's


# The notifications of the types a notify_url received (final statuses, refunds, disputes): not
# payment.initiated / .pending nor subscription.*, which its endpoint (0022) does not receive.
FINAL_NEWS = Notification.event_type.in_(LEGACY_EVENT_TYPES)


def new_reference(prefix: str = "order") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def new_session_id() -> str:
    return "cs_test_" + secrets.token_hex(12)


@dataclass(frozen=True)
class PaymentRef:
    """What a test needs to refer to a payment it made (or one PayBridge never stored: no id),
    readable outside any app context."""

    public_id: str
    session_id: str | None
    reference: str
    amount: int
    currency: str
    id: int | None = None
    status: str | None = None  # when it was made

    @classmethod
    def of(cls, p: Payment) -> PaymentRef:
        ids = (p.public_id, p.psp_session_id, p.merchant_reference)
        return cls(*ids, p.amount, p.currency, p.id, p.status)  # the fields' order above


# -- merchants and users ------------------------------------------------------------------------


def add_merchant(name: str = "Test Shop", notify_url: str | None = None) -> tuple[Merchant, str]:
    """A merchant with one API key: (merchant, raw API key). With `notify_url`, the endpoints
    migration 0022 makes of one: that URL in test and in live mode, one secret, today's types.
    The secret is also on the merchant object as `signing_secret` (not a column: for the
    tests that verify what their receiver got)."""
    merchant = Merchant(name=name)
    key, raw = ApiKey.generate(merchant)
    db.session.add_all([merchant, key])
    db.session.flush()
    if notify_url is not None:
        secret = new_signing_secret()
        for livemode in (False, True):
            db.session.add(
                NotificationEndpoint(
                    merchant_id=merchant.id,
                    livemode=livemode,
                    url=notify_url,
                    event_types=list(LEGACY_EVENT_TYPES),
                    signing_secret=secret,
                )
            )
        db.session.flush()
        merchant.signing_secret = secret
    return merchant, raw


def add_endpoint(
    merchant_id: int, url: str, event_types: list[str], *, livemode: bool = False
) -> NotificationEndpoint:
    """One more endpoint of the merchant (flushed), with its own secret."""
    endpoint = NotificationEndpoint(
        merchant_id=merchant_id, livemode=livemode, url=url, event_types=event_types
    )
    db.session.add(endpoint)
    db.session.flush()
    return endpoint


def endpoints_of(merchant_id: int, livemode: bool | None = None) -> list[NotificationEndpoint]:
    """The merchant's endpoints (of one mode), oldest first."""
    stmt = select(NotificationEndpoint).where(NotificationEndpoint.merchant_id == merchant_id)
    if livemode is not None:
        stmt = stmt.where(NotificationEndpoint.livemode == livemode)
    return list(db.session.scalars(stmt.order_by(NotificationEndpoint.id)))


def make_merchant(
    app, name: str = "Test Shop", notify_url: str | None = None
) -> tuple[Merchant, str]:
    """`add_merchant`, committed: (merchant detached from its session, raw API key)."""
    with app.app_context():
        merchant, raw = add_merchant(name, notify_url)
        db.session.commit()
        secret = getattr(merchant, "signing_secret", None)
        db.session.refresh(merchant)
        db.session.expunge(merchant)
        merchant.signing_secret = secret
        return merchant, raw


def make_api_key(app, merchant_id: int, *, livemode: bool = False) -> str:
    """Another API key of the merchant, of one mode (pbk_test_…, pbk_live_…), committed: the
    raw key."""
    with app.app_context():
        key, raw = ApiKey.generate(db.session.get(Merchant, merchant_id), livemode=livemode)
        db.session.add(key)
        db.session.commit()
        return raw


@functools.cache
def _password_hash() -> str:
    # The app's hashing (scrypt) is deliberately slow, on every log-in too: the test users share
    # one hash of PASSWORD made cheap (a log-in checks by the method the hash names), which
    # spares the suite ~0.1 s per log-in. Passwords set through the app still use its own.
    from werkzeug.security import generate_password_hash

    return generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")


def add_user(merchant_id: int | None, email: str, *, operator: bool = False) -> User:
    """A dashboard user (an operator sees every merchant) whose password is PASSWORD."""
    user = User(
        email=email,
        role=User.ROLE_OPERATOR if operator else User.ROLE_MERCHANT,
        merchant_id=merchant_id,
    )
    user.password_hash = _password_hash()
    db.session.add(user)
    db.session.flush()
    return user


def make_user(app, merchant_id: int | None, email: str, *, operator: bool = False) -> int:
    """`add_user`, committed: the user's id."""
    with app.app_context():
        user = add_user(merchant_id, email, operator=operator)
        db.session.commit()
        return user.id


# -- payments without a PSP ---------------------------------------------------------------------


def add_payment_row(merchant_id: int, **fields) -> Payment:
    """A payment row with working defaults and no history; `fields` set any column."""
    values = {
        "merchant_id": merchant_id,
        "merchant_reference": new_reference(),
        "amount": 1999,
        "currency": "EUR",
        "success_url": SUCCESS_URL,
        "cancel_url": CANCEL_URL,
        "metadata_": {},
        **fields,
    }
    payment = Payment(**values)
    db.session.add(payment)
    return payment


def record_payment(
    merchant_id: int,
    status: PaymentStatus | str = PaymentStatus.INITIATED,
    *,
    session_id: str | None = None,
    **fields,
) -> Payment:
    """A payment moved through the state machine to `status`, as the payment core and the
    webhooks leave it: created, registered with a made-up PSP session (unless CREATED), then
    PENDING, SUCCESS or FAILED (expired) as the PSP would report it. Flushed."""
    status = PaymentStatus(status)
    payment = add_payment_row(merchant_id, **fields)
    record_creation(payment)
    db.session.flush()
    if status == PaymentStatus.CREATED:
        return payment
    sid = session_id or new_session_id()
    payment.psp_session_id = sid
    payment.checkout_url = f"https://checkout.example/c/pay/{sid}"
    payment.psp_expires_at = utcnow() + timedelta(hours=1)
    transition(payment, PaymentStatus.INITIATED, source=StatusSource.API)
    if status == PaymentStatus.FAILED:
        transition(
            payment,
            status,
            source=StatusSource.RECON,
            failure_code="expired",
            failure_message="checkout session expired",
        )
    elif status != PaymentStatus.INITIATED:
        transition(payment, status, source=StatusSource.WEBHOOK)
    db.session.flush()
    return payment


def make_payment(
    app,
    merchant_id: int,
    status: PaymentStatus | str = PaymentStatus.INITIATED,
    **fields,
) -> PaymentRef:
    """`record_payment`, committed."""
    with app.app_context():
        payment = record_payment(merchant_id, status, **fields)
        db.session.commit()
        return PaymentRef.of(payment)


# The history `add_payment` invents for each status.
PATHS = {
    "CREATED": ["CREATED"],
    "INITIATED": ["CREATED", "INITIATED"],
    "PENDING": ["CREATED", "INITIATED", "PENDING"],
    "SUCCESS": ["CREATED", "INITIATED", "SUCCESS"],
    "FAILED": ["CREATED", "INITIATED", "FAILED"],
}


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
    livemode: bool = False,
) -> Payment:
    """A payment row with a history consistent with its status, at any time (the real path is
    covered by the payment core's and webhooks' tests; pages and lists only read these rows)."""
    created_at = created_at or utcnow()
    payment = Payment(
        merchant_id=merchant_id,
        merchant_reference=reference or f"ref-{uuid4().hex[:12]}",
        amount=amount,
        currency=currency,
        payment_type=payment_type,
        interval="month" if payment_type == "RECC" else None,
        customer_email=email,
        success_url=SUCCESS_URL,
        cancel_url=CANCEL_URL,
        metadata_={},
        status=status,
        status_version=len(PATHS[status]),
        psp_session_id=session_id,
        livemode=livemode,
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


def add_many_payments(
    merchant_id: int,
    count: int,
    *,
    start: datetime,
    status: str = "FAILED",
    livemode: bool = False,
    prefix: str = "many",
    **fields,
) -> None:
    """Many bare payment rows of one mode in one INSERT, one second apart back from `start`
    (for size tests; no history); `fields` set any other column of every row."""
    rows = [
        {
            "public_id": new_payment_id(),
            "merchant_id": merchant_id,
            "merchant_reference": f"{prefix}-{i:05d}",
            "amount": 100 + i,
            "currency": "EUR",
            "payment_type": "SALE",
            "success_url": SUCCESS_URL,
            "cancel_url": CANCEL_URL,
            "metadata_": {},
            "status": status,
            "status_version": 3,
            "livemode": livemode,
            "created_at": start - timedelta(seconds=i),
            "updated_at": start - timedelta(seconds=i),
            **fields,
        }
        for i in range(count)
    ]
    db.session.execute(insert(Payment), rows)


def add_refund_rows(
    merchant_id: int,
    *,
    livemode: bool = False,
    n: int = 1,
    start: datetime = datetime(2026, 11, 2, 9, 0, 0),
    status: str = "succeeded",
    amount: int = 100,
    **payment_fields,
) -> list[Refund]:
    """`n` refund rows of one SUCCESS payment of the mode, a minute apart from `start` (oldest
    first), amounts `amount`, `amount` + 1, …; no PSP and no refunded_amount bookkeeping."""
    values = {"status": "SUCCESS", "amount": 100_000, "livemode": livemode, **payment_fields}
    payment = add_payment_row(merchant_id, **values)
    db.session.flush()
    refunds = [
        Refund(
            payment_id=payment.id,
            merchant_id=merchant_id,
            livemode=livemode,
            amount=amount + i,
            currency=payment.currency,
            status=status,
            psp_refund_id=f"re_psp_{uuid4().hex}",
            created_at=start + timedelta(minutes=i),
        )
        for i in range(n)
    ]
    db.session.add_all(refunds)
    db.session.flush()
    return refunds


def add_notification(payment: Payment, *, status: str, attempts: list[int | None]) -> Notification:
    """A notification of the payment in `status`, with one attempt per HTTP status given."""
    note = Notification(
        merchant_id=payment.merchant_id,
        payment_id=payment.id,
        livemode=payment.livemode,
        event_type="payment.succeeded" if payment.status == "SUCCESS" else "payment.failed",
        status_version=payment.status_version,
        payload={"type": "payment.succeeded", "data": {"id": payment.public_id}},
        status=status,
        attempt_count=len(attempts),
        delivered_at=utcnow() if status == "delivered" else None,
        last_error="HTTP 500" if status == "failed" else None,
    )
    db.session.add(note)
    delivery = None
    if status != Notification.STATUS_UNROUTED:  # its one delivery, in the same state
        delivery = NotificationDelivery(
            notification=note,
            endpoint_id=_an_endpoint(payment.merchant_id, payment.livemode).id,
            payment_id=payment.id,
            status=status,
            attempt_count=len(attempts),
            next_attempt_at=utcnow() if status == "pending" else None,
            delivered_at=note.delivered_at,
            last_error=note.last_error,
        )
        db.session.add(delivery)
        db.session.flush()
    for code in attempts:
        db.session.add(
            NotificationAttempt(
                notification=note,
                delivery_id=delivery.id if delivery else None,
                status_code=code,
                error=None if code and code < 300 else f"HTTP {code}",
                duration_ms=12,
            )
        )
    db.session.flush()
    return note


def _an_endpoint(merchant_id: int, livemode: bool) -> NotificationEndpoint:
    """The merchant's first endpoint of that mode, made when it has none."""
    endpoint = db.session.scalar(
        select(NotificationEndpoint)
        .where(
            NotificationEndpoint.merchant_id == merchant_id,
            NotificationEndpoint.livemode == livemode,
        )
        .order_by(NotificationEndpoint.id)
        .limit(1)
    )
    if endpoint is None:
        endpoint = NotificationEndpoint(
            merchant_id=merchant_id,
            livemode=livemode,
            url="https://shop.example/hooks",
            event_types=["*"],
        )
        db.session.add(endpoint)
        db.session.flush()
    return endpoint


# -- payments through the payment core and the emulator -------------------------------------------


def register_payment(
    merchant_id: int, *, idempotency_key: str | None = None, livemode: bool = False, **params
) -> Payment:
    """A payment created through the payment core, so registered at the PSP (INITIATED) in
    the mode given (test by default); `params` are the API's create parameters (defaults:
    25.00 EUR, shop.example URLs). The payment core commits it."""
    params = {
        "merchant_reference": new_reference(),
        "amount": 2500,
        "currency": "EUR",
        "success_url": SUCCESS_URL,
        "cancel_url": CANCEL_URL,
        **params,
    }
    return create_payment(merchant_id, params, idempotency_key=idempotency_key, livemode=livemode)


def registered_payment(
    app, merchant_id: int, *, idempotency_key: str | None = None, **params
) -> PaymentRef:
    """`register_payment` in an app context of its own."""
    with app.app_context():
        payment = register_payment(merchant_id, idempotency_key=idempotency_key, **params)
        db.session.commit()
        ref = PaymentRef.of(payment)
        db.session.remove()
        return ref


def paid_payment(app, emulator, merchant_id: int, **params) -> PaymentRef:
    """The real path to SUCCESS: registered through the payment core, paid with a card at the
    emulator, and the session applied as the shopper's return (or reconciliation) does."""
    payment = registered_payment(app, merchant_id, **params)
    pay_session(emulator, payment.session_id)
    with app.app_context():
        session = get_provider().retrieve_checkout_session(payment.session_id)
        apply_session(payment.id, session, source=StatusSource.RETURN)
        assert db.session.get(Payment, payment.id).status == "SUCCESS"
        db.session.remove()
    return payment


COMPLETED = "checkout.session.completed"


@dataclass(frozen=True)
class PaidAfterFailed:
    payment_id: int
    public_id: str
    session_id: str
    event: object  # the PSP's checkout.session.completed, not yet processed


@dataclass(frozen=True)
class Conflicted:
    conflict_id: int
    payment_id: int
    public_id: str
    session_id: str
    payment_intent_id: str
    amount: int
    merchant_id: int


def failed_then_paid(
    app, emulator, merchant_id: int, amount: int = 2599, currency: str = "EUR"
) -> PaidAfterFailed:
    """A FAILED payment whose session was paid at the emulator; PayBridge has not heard yet.

    The emulator refuses to pay an expired session, so this is how it happens when a webhook is
    lost: the customer pays at the emulator (with no webhook endpoint registered nothing reaches
    PayBridge), PayBridge fails the payment meanwhile (as reconciliation or an operator would),
    and Stripe's real `checkout.session.completed` event is fetched from its Events API, as
    reconciliation's catch-up does. The payment intent behind it really is paid, so a refund at
    the emulator has money to return."""
    since = utcnow() - timedelta(seconds=5)
    payment = registered_payment(
        app, merchant_id, merchant_reference=new_reference("late"), amount=amount, currency=currency
    )
    paid = pay_session(emulator, payment.session_id)
    assert paid["session"]["payment_status"] == "paid", paid
    with app.app_context():
        transition(
            lock_payment(payment.id),
            PaymentStatus.FAILED,
            source=StatusSource.RECON,
            reason="checkout session expired (test: PayBridge gave up first)",
            failure_code="expired",
            failure_message="checkout session expired",
        )
        db.session.commit()
        [event] = [
            e
            for e in get_provider().list_events([COMPLETED], since)
            if e.session is not None and e.session.id == payment.session_id
        ]
        db.session.remove()
    return PaidAfterFailed(payment.id, payment.public_id, payment.session_id, event)


def paid_after_failed(
    app, emulator, merchant_id: int, amount: int = 2599, currency: str = "EUR"
) -> Conflicted:
    """`failed_then_paid`, with the late event processed: the payment stays FAILED and an open
    paid-after-failed conflict records the money taken."""
    late = failed_then_paid(app, emulator, merchant_id, amount, currency)
    with app.app_context():
        row = process_event(late.event)
        assert row.outcome == "conflict", (row.outcome, row.detail)
        conflict = db.session.scalars(
            select(PaymentConflict).where(PaymentConflict.payment_id == late.payment_id)
        ).one()
        assert conflict.kind == PaymentConflict.KIND_PAID_AFTER_FAILED
        result = Conflicted(
            conflict_id=conflict.id,
            payment_id=late.payment_id,
            public_id=late.public_id,
            session_id=late.session_id,
            payment_intent_id=late.event.session.payment_intent_id,
            amount=amount,
            merchant_id=merchant_id,
        )
        assert result.payment_intent_id
        assert db.session.get(Payment, late.payment_id).status == "FAILED"
        db.session.remove()
    return result
