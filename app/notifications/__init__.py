"""Signed notifications to client apps: an outbox written with the status change.

- `outbox.add_payment_notification` writes the row inside the status change's transaction;
- `pump.NotificationPump` (run by worker.py) claims due rows in batches and delivers them;
  `delivery.deliver_due` is one such cycle, `delivery.resend` the operator's (and dashboard's)
  way to send one again.
"""
