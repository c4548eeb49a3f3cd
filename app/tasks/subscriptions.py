"""Subscription jobs: learning a renewal's payment intent from its invoice at the PSP."""

from __future__ import annotations

from app.tasks.context import job_app_context


def learn_renewal_payment_intent(payment_id: int) -> str | None:
    """Idempotent: a renewal that already knows its intent (or no longer exists) is left alone.
    PSP errors raise, so RQ retries the job."""
    from app.subscriptions.service import learn_payment_intent

    with job_app_context():
        return learn_payment_intent(payment_id)
