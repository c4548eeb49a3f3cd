"""Storing PSP events exactly once and handing each to its type's handler, in one transaction.

The event row is inserted before anything else: its unique (psp, event_id) key makes a duplicate
delivery wait for the first one's commit and then fail, so however many copies arrive at once,
one is handled. The handler (registered per event type in `app/wiring.py`: checkout sessions by
the payment core, refunds, subscriptions) locks what it changes and flushes; the event row, the
changes and their outbox notifications commit together.

Test and live events arrive at the same URL: the mode whose endpoint secret verifies an event is
its mode, and the event must say so itself. A handler that finds the event names a payment (a
refund, a subscription) of the other mode stores it with the outcome `mode_mismatch` and
applies nothing: a live event never moves a test payment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from app.common.locks import retry_lock_conflicts, rollback_quietly
from app.errors import DATABASE_DOWN, PayBridgeError, database_unavailable
from app.extensions import db
from app.metrics import WEBHOOK_EVENTS, WEBHOOK_REJECTED
from app.models import PspEvent, StatusSource, utcnow
from app.psp.base import PspEventData, WebhookPayloadError, WebhookVerificationError
from app.psp.factory import configured_modes, get_provider

log = logging.getLogger(__name__)

_EXTENSION = "paybridge.psp_event_handlers"
# Metrics only: a delivery of an event already stored.
OUTCOME_DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Handled:
    """What a handler made of an event: stored on the event row, logged and counted."""

    outcome: str  # one of PspEvent.OUTCOME_* or a handler's own word
    detail: str | None = None
    payment_id: int | None = None  # the payment the event is about, when the handler found one
    after_commit: Callable[[], None] | None = None  # e.g. count a conflict once it is stored


# (event, who delivered it) -> Handled; locks what it changes, flushes, never commits.
EventHandler = Callable[[PspEventData, StatusSource], Handled]


def register_handlers(app: Flask, handlers: Mapping[str, EventHandler]) -> None:
    """Handle these event types (others are stored and acknowledged as unhandled)."""
    app.extensions.setdefault(_EXTENSION, {}).update(handlers)


def _handlers() -> dict[str, EventHandler]:
    return current_app.extensions.get(_EXTENSION, {})


def handled_event_types() -> list[str]:
    """Every event type PayBridge acts on (what reconciliation asks the PSP for)."""
    return sorted(_handlers())


def receive_webhook(psp: str, payload: bytes, signature: str | None) -> PspEvent:
    """A webhook delivery: the event if the PSP signed it, stored once and handled.

    WEBHOOK_SIGNATURE_INVALID / WEBHOOK_PAYLOAD_INVALID when the PSP did not sign it (nothing
    stored); SERVICE_UNAVAILABLE while the database is down, so the PSP delivers it again.
    """
    try:
        # Verification touches neither the database nor Redis: forged floods stay cheap.
        event = verify_in_its_mode(psp, payload, signature)
    except WebhookVerificationError as exc:
        unreadable = isinstance(exc, WebhookPayloadError)
        code = "WEBHOOK_PAYLOAD_INVALID" if unreadable else "WEBHOOK_SIGNATURE_INVALID"
        WEBHOOK_REJECTED.labels(psp, "payload" if unreadable else "signature").inc()
        # The reason only: never the body, the header or a secret.
        log.warning("%s webhook rejected (%s, %d bytes): %s", psp, code, len(payload), exc)
        raise PayBridgeError(code) from None
    try:
        return process_event(event, received_via="webhook", psp=psp)
    except DATABASE_DOWN as exc:
        # The PSP must deliver it again later rather than be told "received".
        log.error("%s webhook %s %s not stored, database unavailable: %s", psp, event.id,
                  event.type, type(exc).__name__)  # fmt: skip
        raise database_unavailable("The event could not be stored; retry later.") from None


def verify_in_its_mode(psp: str, payload: bytes, signature: str | None) -> PspEventData:
    """The event, verified with the endpoint secrets of each configured mode in turn (test
    first: the demo's and the suite's traffic). The mode whose secret verifies it must be the
    one the event states, or it is refused as a payload PayBridge cannot trust: a test
    endpoint's secret must not be able to vouch for a live event."""
    failure: WebhookVerificationError | None = None
    for livemode in configured_modes():
        try:
            event = get_provider(psp, livemode=livemode).verify_webhook(payload, signature)
        except WebhookPayloadError:
            raise  # signed by this mode's secret, but not an event PayBridge can store
        except WebhookVerificationError as exc:
            failure = failure if isinstance(failure, WebhookPayloadError) else exc
            continue
        if event.livemode == livemode:
            return event
        # The other mode's secret may be the one that vouches for it (e.g. the same secret
        # set for both modes by mistake): try it before refusing.
        failure = WebhookPayloadError(
            f"signed with the {mode_name(livemode)} endpoint's secret but says "
            f"livemode {str(event.livemode).lower()}"
        )
    raise failure or WebhookVerificationError("no webhook secret configured")


def mode_name(livemode: bool) -> str:
    return "live" if livemode else "test"


def mode_mismatch(event: PspEventData, livemode: bool, what: str) -> str | None:
    """Why the event must not touch `what` (of mode `livemode`), or None when their modes agree:
    the detail of a `mode_mismatch` outcome."""
    if event.livemode == livemode:
        return None
    return f"a {mode_name(event.livemode)} event about {mode_name(livemode)} {what}: not applied"


def process_event(
    event: PspEventData, *, received_via: str = "webhook", psp: str | None = None
) -> PspEvent:
    """Store a verified PSP event once by its id and handle it; commit; return the stored row
    (detached from the session, its values as committed).

    A duplicate (even one arriving while the first copy is still being handled) returns the
    row stored first and changes nothing. Database errors propagate (the webhook answers 503).
    """
    psp_name = psp or current_app.config.get("PSP_NAME", "stripe")
    source = StatusSource.RECON if received_via == "recon" else StatusSource.WEBHOOK
    try:
        return retry_lock_conflicts(
            lambda: _process_once(event, received_via, psp_name, source),
            what=f"psp event {event.id}",
        )
    except Exception:
        rollback_quietly()  # release the row locks; nothing half-applied stays pending
        raise


# Built once: constructing it per event cost more CPU than running it (py-spy: the duplicate
# check alone was a seventh of a new event's web CPU, mostly building its WHERE).
_STORED_EVENT = (
    select(PspEvent)
    .where(PspEvent.psp == bindparam("psp"), PspEvent.event_id == bindparam("event_id"))
    .execution_options(populate_existing=True)
)


def _process_once(
    event: PspEventData, received_via: str, psp_name: str, source: StatusSource
) -> PspEvent:
    stored = _stored_event(psp_name, event.id)
    if stored is not None:
        return _duplicate(stored)
    session = event.session
    row = PspEvent(
        psp=psp_name,
        event_id=event.id,
        event_type=event.type[:100],
        livemode=event.livemode,
        psp_session_id=session.id if session else None,
        payload=event.raw,
        psp_created_at=event.created_at,
        received_at=utcnow(),
        received_via=received_via,
    )
    db.session.add(row)
    try:
        # Blocks while another transaction holds the same key uncommitted; fails once it commits.
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        stored = _stored_event(psp_name, event.id)
        if stored is None:
            raise
        return _duplicate(stored)

    handler = _handlers().get(event.type)
    handled = handler(event, source) if handler else Handled(PspEvent.OUTCOME_UNHANDLED)
    row.outcome = handled.outcome
    row.detail = (handled.detail or "")[:500] or None
    if handled.payment_id is not None:
        row.payment_id = handled.payment_id
    _commit_keeping(row)
    if handled.after_commit is not None:
        handled.after_commit()

    WEBHOOK_EVENTS.labels(_type_label(event.type), handled.outcome).inc()
    quiet = handled.outcome in (PspEvent.OUTCOME_APPLIED, PspEvent.OUTCOME_UNHANDLED)
    log.log(
        logging.INFO if quiet else logging.WARNING,
        "psp event %s %s (session %s, via %s): %s%s",
        event.id,
        event.type,
        session.id if session else "-",
        received_via,
        handled.outcome,
        f" ({handled.detail})" if handled.detail else "",
    )
    return row


def _stored_event(psp_name: str, event_id: str) -> PspEvent | None:
    """The row this event was stored as, if it was (refreshed: it may be another's commit)."""
    return db.session.execute(
        _STORED_EVENT, {"psp": psp_name, "event_id": event_id}
    ).scalar_one_or_none()


def _duplicate(stored: PspEvent) -> PspEvent:
    WEBHOOK_EVENTS.labels(_type_label(stored.event_type), OUTCOME_DUPLICATE).inc()
    log.info("psp event %s already stored (outcome %s): ignored", stored.event_id, stored.outcome)
    _commit_keeping(stored)  # end the read; nothing changed
    return stored


def _commit_keeping(row: PspEvent) -> None:
    """Commit, leaving `row` detached with its values loaded for the caller.

    A commit expires every instance, so the caller's first read of `row.outcome` would be
    one more SELECT per event (a tenth of a webhook's statements).
    """
    db.session.flush()
    db.session.expunge(row)
    db.session.commit()


def _type_label(event_type: str) -> str:
    """Bound the metric's label values to the types PayBridge knows."""
    return event_type if event_type in _handlers() else "other"
