"""The shopper's return from the hosted checkout: not proof of payment, but a cue to ask the PSP."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlunsplit

from limits import parse

from app.common.urls import split_url
from app.errors import ValidationError
from app.extensions import db, limiter
from app.models import Payment, PaymentStatus, StatusSource, utcnow
from app.payments.psp_facts import apply_session
from app.payments.state import lock_payment
from app.psp.base import PspError
from app.psp.factory import get_provider

log = logging.getLogger(__name__)

# Anyone holding a return URL can reload it: bound the PSP calls it causes per payment.
RETURN_CHECKS_PER_PAYMENT = "6/minute"

_SESSION_ID = re.compile(r"^cs_[A-Za-z0-9_]{1,250}$")
_PAYMENT_ID = re.compile(r"^pay_[A-Za-z0-9]{1,28}$")


def find_payment(public_id: str) -> Payment | None:
    """The payment with this public id, or None (also for ids that cannot be ours)."""
    if not _PAYMENT_ID.match(public_id or ""):
        return None
    return db.session.execute(
        db.select(Payment).where(Payment.public_id == public_id)
    ).scalar_one_or_none()


def check_on_return(payment: Payment, session_id_hint: str | None) -> str | None:
    """Ask the PSP once about a payment still waiting (INITIATED) and apply the answer.

    A CREATED payment (its registration answer was lost) has no session id of its own: the
    session named in the return URL is used, and apply_session checks it belongs to the
    payment. Returns apply_session's outcome, or None when nothing was asked or the PSP could
    not answer: the shopper is redirected either way.
    """
    status = payment.status_enum
    if status not in (PaymentStatus.INITIATED, PaymentStatus.CREATED):
        return None
    session_id = payment.psp_session_id
    if session_id is None:
        if not session_id_hint or not _SESSION_ID.match(session_id_hint):
            return None
        session_id = session_id_hint
    elif session_id_hint and session_id_hint != session_id:
        log.warning(
            "return for %s names session %.60s, not its own %s: asking about its own",
            payment.public_id,
            session_id_hint,
            session_id,
        )
    payment_pk, public_id = payment.id, payment.public_id
    if not _may_ask_psp(public_id):
        log.info("return for %s: PSP asked often enough lately; not asking again", public_id)
        return None
    try:
        provider = get_provider(payment.psp, livemode=payment.livemode)
        session = provider.retrieve_checkout_session(session_id)
    except PspError as exc:
        log.warning(
            "return for %s: could not ask the PSP about %s (%s: %s); redirecting anyway",
            public_id,
            session_id,
            type(exc).__name__,
            exc.message,
        )
        return None
    try:
        return apply_session(payment_pk, session, source=StatusSource.RETURN)
    except Exception:
        # Never strand the shopper: the webhook or reconciliation will apply it later.
        db.session.rollback()
        log.exception("return for %s: could not apply session %s", public_id, session_id)
        return None


def record_shopper_left(payment: Payment) -> bool:
    """The shopper left the hosted page by its back link (the cancel return). As on Stripe the
    checkout stays open (they may come back and pay until it expires); the time is kept so
    that a checkout closing unpaid reads canceled_by_shopper, not expired. Only while the
    payment waits for the shopper (INITIATED); at most the return checks' budget per payment
    (anyone holding the URL can reload it). Returns whether it was recorded; never raises:
    the shopper is redirected either way."""
    if payment.status != PaymentStatus.INITIATED:
        return False
    payment_pk, public_id = payment.id, payment.public_id
    if not _may_ask_psp(public_id):
        return False
    try:
        locked = lock_payment(payment_pk)
        recorded = locked.status == PaymentStatus.INITIATED
        if recorded:
            locked.shopper_canceled_at = utcnow()
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("cancel for %s: the shopper's leaving was not recorded", public_id)
        return False
    return recorded


def _may_ask_psp(public_id: str) -> bool:
    """A per-payment budget of PSP calls from return pages; without Redis, always yes."""
    try:
        return limiter.limiter.hit(parse(RETURN_CHECKS_PER_PAYMENT), "checkout-return", public_id)
    except Exception as exc:  # storage down or limiter off: the shopper's check matters more
        log.debug("return check budget unavailable (%s)", type(exc).__name__)
        return True


def with_payment_id(url: str, public_id: str) -> str | None:
    """The merchant's URL with `payment_id=<id>` added, its other query parameters kept; None
    when the stored URL cannot be read (rows created before the API checked that it can)."""
    try:
        parts = split_url(url)
    except ValidationError:
        log.warning("payment %s has a return URL that cannot be read: %.100r", public_id, url)
        return None
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "payment_id"]
    query.append(("payment_id", public_id))
    return urlunsplit(parts._replace(query=urlencode(query)))
