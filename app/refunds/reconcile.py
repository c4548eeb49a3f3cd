"""Reconciliation of refunds still pending: submit the unsubmitted, ask the PSP about the rest.

A refund whose PSP call failed (PSP down, answer lost) has no PSP id: it is submitted again
with its own PSP idempotency key, so the PSP answers with the refund it may already have made.
A submitted refund still pending (its webhook lost or not sent yet) is retrieved and its status
applied through the same rules as a webhook. Each refund is its own transaction.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import Payment, Refund, RefundStatus, utcnow
from app.payments.state import lock_payment
from app.psp import PspError, get_provider
from app.refunds.service import apply_psp_refund, lock_refund, refund_mismatch, submit_pending

log = logging.getLogger(__name__)

BATCH_SIZE = 200


def pending_refund_ids(stale_after: timedelta, *, after_id: int = 0) -> list[int]:
    """Pending refunds not touched for `stale_after`, oldest first, one batch after `after_id`."""
    cutoff = utcnow() - stale_after
    ids = db.session.scalars(
        select(Refund.id)
        .where(Refund.status == RefundStatus.PENDING, Refund.updated_at <= cutoff)
        .where(Refund.id > after_id)
        .order_by(Refund.id)
        .limit(BATCH_SIZE)
    ).all()
    db.session.commit()
    return list(ids)


def check_refunds(reconciler, stale_after: timedelta) -> None:
    """The reconciliation run's refunds pass (see service.run_reconciliation)."""
    after_id = 0
    while True:
        batch = pending_refund_ids(stale_after, after_id=after_id)
        if not batch:
            return
        for refund_id in batch:
            reconciler.tick()
            entry = check_refund(refund_id, gate=reconciler.gate, dry_run=reconciler.dry_run)
            _tally(reconciler.tally, entry)
        after_id = batch[-1]


def check_payment_refunds(payment_id: int, *, gate=None, dry_run: bool = False) -> list[dict]:
    """Check every pending refund of one payment now (the on-demand "reconcile this payment")."""
    ids = db.session.scalars(
        select(Refund.id).where(
            Refund.payment_id == payment_id, Refund.status == RefundStatus.PENDING
        )
    ).all()
    db.session.commit()
    entries = []
    for refund_id in ids:
        entry = check_refund(refund_id, gate=gate, dry_run=dry_run)
        entry.pop("payment_id", None)
        entries.append(entry)
    return entries


def check_refund(refund_id: int, *, gate=None, dry_run: bool = False) -> dict:
    """Bring one pending refund up to date with the PSP; returns what happened (for the run).

    {"payment", "refund", "from", "to", "action", "why"?, "error"?, "changed"}; from/to are the
    refund's statuses, and `why` names the refund (run pages and the CLI show payment lines).
    """
    entry = _check_refund(refund_id, gate=gate, dry_run=dry_run)
    entry["why"] = f"refund {entry['refund']}: {entry.get('why') or entry['action']}"
    return entry


def _check_refund(refund_id: int, *, gate=None, dry_run: bool) -> dict:
    refund = db.session.get(Refund, refund_id, populate_existing=True)
    assert refund is not None  # refunds are never deleted
    payment_public_id = db.session.scalar(
        select(Payment.public_id).where(Payment.id == refund.payment_id)
    )
    entry = {
        "payment": payment_public_id,
        "payment_id": refund.payment_id,
        "refund": refund.public_id,
        "from": refund.status,
        "to": refund.status,
        "changed": False,
    }
    if refund.status != RefundStatus.PENDING:
        entry.update(action="refund_unchanged", why=f"refund already {refund.status}")
        return entry
    call = gate.call if gate is not None else (lambda _operation, func: func())
    psp_refund_id, psp = refund.psp_refund_id, refund.psp
    livemode = bool(
        db.session.scalar(select(Payment.livemode).where(Payment.id == refund.payment_id))
    )
    db.session.commit()
    try:
        if psp_refund_id is None:
            if dry_run:
                entry.update(action="refund_would_submit", why="never accepted by the PSP")
                return entry
            refund, status = call("create_refund", lambda: submit_pending(refund_id))
            entry["to"] = refund.status
            entry["changed"] = refund.status != entry["from"] or refund.psp_refund_id is not None
            if status >= 400:
                entry.update(
                    action="refund_rejected", why=f"the PSP refused it: {refund.failure_reason}"
                )
            elif status == 202:
                entry.update(action="refund_unsubmitted", error=refund.last_psp_error)
                entry["why"] = f"the PSP still cannot be reached: {refund.last_psp_error}"
            else:
                entry.update(
                    action="refund_submitted",
                    why=f"submitted again with its PSP key: {refund.psp_refund_id} {refund.status}",
                )
            return entry
        provider = get_provider(psp, livemode=livemode)
        psp_refund = call("retrieve_refund", lambda: provider.retrieve_refund(psp_refund_id))
    except PspError as exc:
        db.session.rollback()
        entry.update(action="refund_error", error=f"{type(exc).__name__}: {exc.message}"[:300])
        entry["why"] = f"the PSP could not be asked: {entry['error']}"
        return entry
    except Exception as exc:  # PayBridgeError (REFUND_REJECTED from a submission) and the like
        db.session.rollback()
        refund = db.session.get(Refund, refund_id, populate_existing=True)
        entry.update(action="refund_error", to=refund.status, error=str(exc)[:300])
        entry["changed"] = refund.status != entry["from"]
        entry["why"] = str(exc)[:300]
        return entry
    if dry_run:
        entry.update(action="refund_checked", to=psp_refund.status, why="dry run")
        return entry
    payment = lock_payment(refund.payment_id)
    refund = lock_refund(refund_id)
    problem = refund_mismatch(refund, psp_refund)
    if problem:
        db.session.rollback()
        entry.update(action="refund_mismatch", why=problem, error=problem)
        return entry
    change = apply_psp_refund(payment, refund, psp_refund, via="recon")
    refund.updated_at = utcnow()  # checked now: the next run waits its turn again
    db.session.commit()
    entry["to"] = refund.status
    entry["changed"] = change is not None
    entry["action"] = "refund_corrected" if change else "refund_pending"
    entry["why"] = f"PSP refund {psp_refund.id} is {psp_refund.status}"
    return entry


def _tally(tally, entry: dict) -> None:
    tally.checked.add(entry["payment_id"])
    if entry.get("changed"):
        tally.corrected.add(entry["refund"])
    if entry.get("error"):
        tally.errors += 1
    if entry.get("to") == RefundStatus.PENDING and not entry.get("error"):
        tally.still_open += 1
    if entry.get("changed") or entry.get("error"):
        tally.add({k: v for k, v in entry.items() if k not in ("changed", "payment_id")})
