"""Subscriptions (RECC): the record behind a recurring payment, its renewals, its end.

`init_app(app)` (called from the app factory's register_extensions) installs the flush hook
that records a subscription when its first payment learns the PSP's subscription id, registers
the invoice/subscription webhook handlers with the webhook pipeline, and adds the dashboard's
subscription pages to the dashboard blueprint (before the blueprints are registered).
"""

from flask import Flask


def init_app(app: Flask) -> None:
    from app.subscriptions import dashboard, events, hooks  # noqa: F401  (dashboard: its routes)

    hooks.install_session_hooks()
    events.register()
