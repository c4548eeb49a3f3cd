"""Hooks: reactions run in the order app/wiring.py connects them, per application, and a hook
whose reactions keep a promise refuses to be sent with none connected."""

from __future__ import annotations

import pytest
from flask import Flask

from app.common.hooks import Hook
from app.payments import signals as payment_signals
from app.refunds import signals as refund_signals


def test_receivers_run_in_the_order_connected_and_only_in_their_app():
    hook = Hook("test.happened")
    first, second = Flask("first"), Flask("second")
    heard = []
    hook.connect(first, lambda x: heard.append(("a", x)))
    hook.connect(first, lambda x: heard.append(("b", x)))
    hook.connect(second, lambda x: heard.append(("other app", x)))
    with first.app_context():
        hook.send(1)
    assert heard == [("a", 1), ("b", 1)]


def test_a_required_hook_with_nothing_connected_fails_loudly():
    bare = Flask("unwired")
    with bare.app_context(), pytest.raises(RuntimeError, match="nothing reacts to"):
        Hook("test.promise", required=True).send(1)
    with bare.app_context():
        Hook("test.optional").send(1)  # nothing to do, and nothing lost


def test_the_app_connects_every_payment_and_refund_reaction_in_order(app):
    connected = app.extensions["paybridge.hooks"]
    names = {name: [f"{r.__module__}.{r.__name__}" for r in rs] for name, rs in connected.items()}
    assert names[payment_signals.status_changed.name] == [
        "app.subscriptions.reactions.follow_first_payment",  # first: the notification names it
        "app.notifications.outbox.notify_payment",
    ]
    assert names[payment_signals.subscription_learned.name] == [
        "app.subscriptions.reactions.record_subscription"
    ]
    assert names[refund_signals.finished.name] == ["app.notifications.outbox.notify_refund"]
