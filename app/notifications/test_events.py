"""Test events: a merchant sends one made-up event to one of its endpoints, now, and sees the
request and the answer (dashboard and API).

A test event is signed like every notification (with the endpoint's secret(s)), checked like
every delivery (the URL's addresses, NOTIFY_ALLOWED_NETWORKS) and bounded by the same timeout,
but it is never a notification: no event of the Events API, no delivery, no retry. Its data is
obviously fake (ids `…_test_…`, `"test": true` in the body). Each is kept as an
EndpointTestEvent row, which also serves as the rate limit: a merchant cannot use PayBridge to
hammer a third party's URL (TEST_EVENTS_PER_MINUTE per merchant, counted in the database so
every process counts the same, under the merchant's row lock so concurrent requests count each
other).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select

from app.common.locks import lock_row, read_committed
from app.errors import PayBridgeError, ValidationError
from app.extensions import db
from app.models import EndpointTestEvent, Merchant, NotificationEndpoint, iso, utcnow
from app.models.base import public_id
from app.notifications import event_types
from app.notifications.delivery import AttemptResult, DeliveryOptions, send
from app.notifications.event_types import EVENT_TYPES
from app.notifications.targets import TargetRefused, check_target

log = logging.getLogger(__name__)

DEFAULT_TYPE = "payment.succeeded"
TEST_EVENTS_PER_MINUTE = 10
# A test waits for the client app in the merchant's request: never longer than this.
TIMEOUT_CAP_SECONDS = 10.0
FAKE = "Test event from PayBridge: made up, not a real {}."


def check_type(event_type: str | None) -> str:
    """The type to send (the default when none is given); ValidationError for an unknown one."""
    if event_type is None or event_type == "":
        return DEFAULT_TYPE
    if event_type not in EVENT_TYPES:
        raise ValidationError(
            f"Unknown event type {str(event_type)[:60]!r}. Known: {', '.join(EVENT_TYPES)}.",
            param="type",
        )
    return event_type


def send_test_event(
    endpoint: NotificationEndpoint, event_type: str | None = None
) -> EndpointTestEvent:
    """POST a made-up event of `event_type` to the endpoint now and record what happened (a
    refused URL or an unreachable client app is a recorded failure, not an error); commits.
    RATE_LIMITED (429) past the merchant's per-minute allowance."""
    event_type = check_type(event_type)
    _check_rate(endpoint.merchant_id)
    options = DeliveryOptions.from_config(current_app.config)
    msg_id = public_id("msg_test_")
    test = EndpointTestEvent(
        public_id=msg_id,
        merchant_id=endpoint.merchant_id,
        endpoint_id=endpoint.id,
        event_type=event_type,
        url=endpoint.url,
        sent_at=utcnow(),
    )
    payload = {
        "id": msg_id,
        "type": event_type,
        "livemode": endpoint.livemode,
        "timestamp": iso(test.sent_at),
        "test": True,
        "data": fake_data(event_type, endpoint.livemode),
    }
    url, secrets, endpoint_public_id = endpoint.url, endpoint.signing_secrets(), endpoint.public_id
    # Recorded before it is sent, in the transaction that counted under the merchant's lock, so
    # concurrent tests count against the limit; and committed, so no transaction (nor
    # connection) is held while the client app answers.
    db.session.add(test)
    db.session.commit()
    result = _post(url, secrets, msg_id, payload, options)
    test.ok = result.ok
    test.status_code = result.status_code
    test.error = result.error
    test.duration_ms = result.duration_ms
    test.request_headers = result.request_headers
    test.request_body = result.request_body
    test.response_headers = result.response_headers
    test.response_body = result.response_body
    db.session.commit()
    log.info(
        "test event %s (%s) to endpoint %s: %s",
        msg_id,
        event_type,
        endpoint_public_id,
        "answered 2xx" if result.ok else result.error,
    )
    return test


def _check_rate(merchant_id: int) -> None:
    """Refuse past the allowance. Takes the merchant's row lock, held until the caller commits
    its test row: a concurrent request counts only after that commit, so check and insert are
    one step and at most TEST_EVENTS_PER_MINUTE pass."""
    lock_row(Merchant, merchant_id)
    since = utcnow() - timedelta(minutes=1)
    # As committed now, not as this transaction's snapshot (REPEATABLE READ) saw them before
    # the lock was granted; the lock already orders the writers, so this read takes none.
    [(recent,)] = read_committed(
        select(func.count(EndpointTestEvent.id)).where(
            EndpointTestEvent.merchant_id == merchant_id, EndpointTestEvent.sent_at > since
        )
    )
    if (recent or 0) >= TEST_EVENTS_PER_MINUTE:
        raise PayBridgeError(
            "RATE_LIMITED",
            f"At most {TEST_EVENTS_PER_MINUTE} test events a minute; try again in a minute.",
            headers={"Retry-After": "60"},
        )


def _post(
    url: str, secrets: list[str], msg_id: str, payload: dict, options: DeliveryOptions
) -> AttemptResult:
    try:
        target = check_target(url, allowed_networks=options.allowed_networks)
    except TargetRefused as refused:
        error = f"not sent, URL refused: {refused.reason}"[:500]
        return AttemptResult(False, None, error, 0, sent=False)
    timeout = min(options.timeout, TIMEOUT_CAP_SECONDS)
    return send(target, msg_id, payload, secrets, timeout=timeout)


def fake_data(event_type: str, livemode: bool) -> dict:
    """An obviously made-up object of the type's `data` kind, shaped like the real one."""
    now = iso(utcnow())
    kind = EVENT_TYPES[event_type].data
    common = {"livemode": livemode, "created_at": now, "updated_at": now, "psp": "stripe"}
    if kind == event_types.REFUND_DATA:
        return {
            "id": "re_test_00000000000000000000",
            "object": "refund",
            "payment_id": "pay_test_00000000000000000000",
            "amount": 1000,
            "currency": "EUR",
            "status": "failed" if event_type == "refund.failed" else "succeeded",
            "reason": FAKE.format("refund"),
            **common,
        }
    if kind == event_types.DISPUTE_DATA:
        return {
            "id": "dp_test_00000000000000000000",
            "object": "dispute",
            "payment_id": "pay_test_00000000000000000000",
            "amount": 1000,
            "currency": "EUR",
            "reason": "fraudulent",
            "status": "needs_response",
            "evidence_text": FAKE.format("dispute"),
            **common,
        }
    if kind == event_types.SUBSCRIPTION_DATA:
        return {
            "id": "sub_test_00000000000000000000",
            "object": "subscription",
            "status": "active",
            "amount": 1000,
            "currency": "EUR",
            "interval": "month",
            "interval_count": 1,
            "merchant_reference": "test-event",
            **common,
        }
    status = {
        "payment.initiated": "INITIATED",
        "payment.attempt_failed": "INITIATED",
        "payment.pending": "PENDING",
        "payment.failed": "FAILED",
    }.get(event_type, "SUCCESS")
    payment: dict = {
        "id": "pay_test_00000000000000000000",
        "object": "payment",
        "merchant_reference": "test-event",
        "amount": 1000,
        "currency": "EUR",
        "payment_type": "OTP",
        "description": FAKE.format("payment"),
        "metadata": {"test_event": "true"},
        "status": status,
        "refunded_amount": 0,
        **common,
    }
    if kind == event_types.ATTEMPT_DATA:
        payment["attempt"] = {
            "object": "payment_attempt",
            "attempted_at": now,
            "outcome": "failed",
            "method_type": "card",
            "decline_code": "insufficient_funds",
            "failure_code": "card_declined",
            "failure_message": FAKE.format("attempt"),
        }
    return payment
