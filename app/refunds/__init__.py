"""Refunds of SUCCESS payments (issue 6): reserve, ask the PSP, confirm by webhook or recon.

- `service.submit_refund` / `create_refund`: the API's and the dashboard's entry point;
- `events`: the PSP's refund events, applied inside `process_event`'s transaction;
- `reconcile`: the reconciliation pass over refunds still pending.

Kept import-free so that `app.payments.serialize` and the outbox can use `serialize` without
a cycle; `service` imports `events`, which registers the webhook handlers.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the PSP's refund events with the webhook pipeline (at import, once a process)."""
    from app.refunds import events  # noqa: F401
