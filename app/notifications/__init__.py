"""Signed notifications to client apps: an outbox written with the change it tells of.

- `outbox`: reactions to a payment's status change and a refund's outcome (connected in
  `app/wiring.py`) that write the row inside the change's transaction;
- `pump.NotificationPump` (run by the worker) claims due rows in batches and delivers them;
  `delivery.deliver_due` is one such cycle; `redelivery` sends events again (CLI, dashboard
  and API alike); `targets` decides where a notification may be sent.
"""
