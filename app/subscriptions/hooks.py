"""The flush hook that records a subscription the moment its first payment learns of it.

Every path that completes a RECC checkout (webhook, return page, reconciliation, the payment
core's own registration) ends by setting `psp_subscription_id` on the first payment; none of
them has to know about subscriptions. Listening on the session's `before_flush` writes the
Subscription row in that same flush (so the payment's notification, serialised right after,
already names it) and lets an incomplete subscription follow its first payment to active or
cancelled.
"""

from __future__ import annotations

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import Payment
from app.payments.status import PaymentType


def _changed(obj, attribute: str) -> bool:
    return inspect(obj).attrs[attribute].history.has_changes()


def _before_flush(session: Session, flush_context, instances) -> None:
    from app.subscriptions.service import ensure_for_first_payment, first_payment_status_changed

    for obj in list(session.new) + list(session.dirty):
        if (
            not isinstance(obj, Payment)
            or obj.payment_type != PaymentType.RECC.value
            or obj.parent_payment_id is not None
            or not obj.psp_subscription_id
        ):
            continue
        if obj in session.new or _changed(obj, "psp_subscription_id"):
            ensure_for_first_payment(session, obj)
        if obj.id is not None and _changed(obj, "status"):
            first_payment_status_changed(session, obj)


def install_session_hooks() -> None:
    """Listen on Flask-SQLAlchemy's session (once per process)."""
    if not event.contains(db.session, "before_flush", _before_flush):
        event.listen(db.session, "before_flush", _before_flush)
