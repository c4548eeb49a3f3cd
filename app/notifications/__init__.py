"""Signed notifications to client apps: an outbox written with the status change, sent by jobs.

- `outbox.add_payment_notification` writes the row inside the status change's transaction;
- `dispatch` enqueues it once that transaction commits (session hooks installed here);
- `delivery.deliver` is the job body, `delivery.sweep_due` the safety net, `delivery.resend`
  the operator's (and dashboard's) way to send one again.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    """Enqueue every new notification after the commit that wrote it."""
    from app.notifications.dispatch import install_session_hooks

    install_session_hooks()
