"""The flush hook that records a subscription the moment its first payment learns of it.

Every path that completes a RECC checkout (webhook, return page, reconciliation, the payment
core's own registration) ends by setting `psp_subscription_id` on the first payment; none of
them has to know about subscriptions. Listening on the session's `before_flush` writes the
Subscription row in that same flush (so the payment's notification, serialised right after,
already names it) and lets an incomplete subscription follow its first payment to active or
cancelled. After a commit that recorded renewals whose invoice did not name its payment intent,
a job asks the PSP for it (a refund of that charge needs it).
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from rq import Retry
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import Payment
from app.payments.status import PaymentType

log = logging.getLogger(__name__)

_LEARN_KEY = "paybridge_subscriptions_learn_intent"


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


def learn_intent_after_commit(session: Session, payment_id: int) -> None:
    """Once this transaction commits, ask a job to fetch the renewal's payment intent."""
    session.info.setdefault(_LEARN_KEY, set()).add(payment_id)


def _after_commit(session: Session) -> None:
    payment_ids = session.info.pop(_LEARN_KEY, None)
    if not payment_ids:
        return
    from app.tasks import enqueue
    from app.tasks.subscriptions import learn_renewal_payment_intent

    for payment_id in sorted(payment_ids):
        try:
            enqueue(
                learn_renewal_payment_intent,
                payment_id,
                job_id=f"subscription-intent-{payment_id}",
                retry=Retry(max=3, interval=[10, 60, 300]),
            )
        except RedisError as exc:  # reconciliation learns it from the invoice listing
            log.warning("payment %s: intent lookup not queued (%s)", payment_id, exc)


def _after_soft_rollback(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_LEARN_KEY, None)


def install_session_hooks() -> None:
    """Listen on Flask-SQLAlchemy's session (once per process)."""
    for name, fn in (
        ("before_flush", _before_flush),
        ("after_commit", _after_commit),
        ("after_soft_rollback", _after_soft_rollback),
    ):
        if not event.contains(db.session, name, fn):
            event.listen(db.session, name, fn)
