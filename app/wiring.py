"""How the domains hang together: every reaction to another domain's news, and every PSP event
type's handler, in one place. `create_app` calls `register_hooks`; nothing registers itself on
import.

Order matters where two reactions meet one change: a subscription follows its first payment
before the client is notified, so the notification names the subscription.
"""

from __future__ import annotations

from flask import Flask

from app.disputes import psp_events as dispute_events
from app.disputes import signals as dispute_signals
from app.notifications import health as endpoint_health
from app.notifications import outbox
from app.notifications import signals as notification_signals
from app.payments import attempts, psp_facts
from app.payments import signals as payment_signals
from app.psp_events.intake import register_handlers
from app.refunds import psp_events as refund_events
from app.refunds import signals as refund_signals
from app.subscriptions import psp_events as subscription_events
from app.subscriptions import reactions as subscriptions
from app.subscriptions import signals as subscription_signals


def register_hooks(app: Flask) -> None:
    # A first RECC payment learned its PSP subscription: its subscription row exists from now.
    payment_signals.subscription_learned.connect(app, subscriptions.record_subscription)

    # A payment changed status: its subscription follows, then its client is told.
    payment_signals.status_changed.connect(app, subscriptions.follow_first_payment)
    payment_signals.status_changed.connect(app, outbox.notify_payment)

    # A declined attempt was recorded (the payment stays open): its client is told.
    payment_signals.attempt_failed.connect(app, outbox.notify_attempt_failed)

    # A refund succeeded or failed: its client is told.
    refund_signals.finished.connect(app, outbox.notify_refund)

    # A dispute was recorded, changed or closed: its client is told.
    dispute_signals.changed.connect(app, outbox.notify_dispute)

    # A subscription started, renewed, fell behind or ended: its client is told.
    subscription_signals.changed.connect(app, outbox.notify_subscription)

    # A delivery cycle's attempts were recorded: each endpoint's health clock moves on.
    notification_signals.attempted.connect(app, endpoint_health.note_outcomes)

    # What each PSP event type means, and who handles it (others are stored, unhandled).
    register_handlers(
        app,
        {
            **dict.fromkeys(psp_facts.CHECKOUT_EVENT_TYPES, psp_facts.handle_checkout_event),
            # Each declined attempt on the hosted page (its decline code, the card tried).
            **dict.fromkeys(
                attempts.PAYMENT_INTENT_EVENT_TYPES, attempts.handle_payment_intent_event
            ),
            # Each charge as it is made or settles: how the payment was paid (before its
            # checkout event moves it, as Stripe usually sends them), or a declined try.
            **dict.fromkeys(attempts.CHARGE_EVENT_TYPES, attempts.handle_charge_event),
            **dict.fromkeys(refund_events.REFUND_EVENT_TYPES, refund_events.handle_refund_event),
            **dict.fromkeys(
                dispute_events.DISPUTE_EVENT_TYPES, dispute_events.handle_dispute_event
            ),
            **dict.fromkeys(
                subscription_events.INVOICE_EVENT_TYPES, subscription_events.handle_invoice
            ),
            **dict.fromkeys(
                subscription_events.SUBSCRIPTION_EVENT_TYPES,
                subscription_events.handle_subscription,
            ),
        },
    )
