"""Reconciliation of subscriptions: the PSP's latest invoices and state of each one.

A renewal whose `invoice.paid` (or `invoice.payment_failed`) webhook never came is found here
among the subscription's latest invoices and recorded exactly as the webhook would have
(apply_invoice, source recon: the charge's unique key makes a late webhook change nothing
after it); a cancellation whose event was lost is taken from the retrieved subscription.
Each subscription is its own transaction; a dry run only reports.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import or_, select

from app.extensions import db
from app.models import (
    PaymentStatus,
    StatusSource,
    Subscription,
    SubscriptionCharge,
    SubscriptionStatus,
    utcnow,
)
from app.psp import get_provider
from app.psp.base import PspInvoice
from app.subscriptions import service

log = logging.getLogger(__name__)

# Invoices looked at per subscription, newest first: enough for a renewal and its retries.
LATEST_INVOICES = 3
BATCH = 100


def subscription_ids_to_check(lookback: timedelta) -> list[int]:
    """Every subscription still billing, and those cancelled within the lookback window."""
    since = utcnow() - lookback
    return list(
        db.session.execute(
            select(Subscription.id)
            .where(
                or_(
                    Subscription.status != SubscriptionStatus.CANCELLED,
                    Subscription.updated_at >= since,
                )
            )
            .order_by(Subscription.id)
        ).scalars()
    )


def reconcile_subscriptions(reconciler) -> None:
    """The recon pass (app/reconciliation/service.py runs it after the payments passes)."""
    lookback = timedelta(hours=current_app.config["RECON_LOOKBACK_HOURS"])
    ids = subscription_ids_to_check(lookback)
    db.session.commit()
    for subscription_id in ids:
        reconciler.tick()
        check_subscription(reconciler, subscription_id)


def check_subscription(reconciler, subscription_id: int) -> list[dict]:
    """Ask the PSP for one subscription's latest invoices and state; record what is missing."""
    subscription = db.session.get(Subscription, subscription_id, populate_existing=True)
    assert subscription is not None  # subscriptions are never deleted
    psp_id, first_public = subscription.psp_subscription_id, subscription.first_payment.public_id
    status_before = subscription.status
    psp, livemode = subscription.psp, subscription.livemode
    reconciler.tally.checked.add(subscription.first_payment_id)
    db.session.commit()
    provider = get_provider(psp, livemode=livemode)  # the subscription's own mode
    entries: list[dict] = []
    try:
        invoices = reconciler.gate.call(
            "list_invoices",
            lambda: provider.list_subscription_invoices(psp_id, limit=LATEST_INVOICES),
        )
        state = reconciler.gate.call(
            "retrieve_subscription", lambda: provider.retrieve_subscription(psp_id)
        )
        for invoice in sorted(invoices, key=lambda i: (i.created_at or utcnow(), i.id)):
            entry = _check_invoice(reconciler, invoice, first_public)
            if entry:
                entries.append(entry)
        if reconciler.dry_run:
            target = service.PSP_STATUSES.get(state.status)
            if target and target != status_before:
                entries.append(_entry(first_public, status_before, target, "would_sync_status"))
        else:
            _, detail, synced = service.apply_psp_subscription(
                state, observed_at=None, ended=state.status == "canceled"
            )
            db.session.commit()
            if synced is not None and synced.status != status_before:
                entries.append(
                    _entry(
                        first_public, status_before, synced.status, "subscription_synced", detail
                    )
                )
    except Exception as exc:  # one subscription's trouble must not stop the pass
        db.session.rollback()
        log.warning("recon: subscription %s: %s: %s", psp_id, type(exc).__name__, exc)
        reconciler.tally.errors += 1
        entry = _entry(first_public, status_before, None, "subscription_error")
        entry["error"] = f"{type(exc).__name__}: {exc}"[:300]
        entries.append(entry)
    for entry in entries:
        if entry.get("payment") and not entry.get("error"):
            reconciler.tally.corrected.add(entry["payment"])
        reconciler.tally.add(entry)
    return entries


def _check_invoice(reconciler, invoice: PspInvoice, first_public: str) -> dict | None:
    if invoice.status == "paid":
        paid = True
    elif invoice.status == "open" and invoice.attempt_count > 0:
        paid = False
    else:
        return None  # draft, void, uncollectible, or not attempted yet: nothing was charged
    if reconciler.dry_run:
        attempt = (
            SubscriptionCharge.ATTEMPT_PAID
            if paid
            else SubscriptionCharge.failed_attempt(invoice.attempt_count)
        )
        known = db.session.execute(
            select(SubscriptionCharge.id).where(
                SubscriptionCharge.psp_invoice_id == invoice.id,
                SubscriptionCharge.attempt == attempt,
            )
        ).scalar_one_or_none()
        db.session.commit()
        if known is not None or invoice.billing_reason == service.BILLING_REASON_CREATE:
            return None
        to = PaymentStatus.SUCCESS if paid else PaymentStatus.FAILED
        return _entry(first_public, None, to, "would_record_renewal", f"invoice {invoice.id}")
    outcome, detail, payment = service.apply_invoice(invoice, paid=paid, source=StatusSource.RECON)
    db.session.commit()
    if outcome != "applied" or payment is None or payment.parent_payment_id is None:
        return None
    return _entry(
        payment.public_id,
        None,
        payment.status,
        "renewal_recorded",
        f"invoice {invoice.id} of subscription {invoice.subscription_id}: {detail}",
    )


def _entry(payment: str, from_: str | None, to: str | None, action: str, why: str = "") -> dict:
    return {"payment": payment, "from": from_, "to": to, "action": action, "why": why}
