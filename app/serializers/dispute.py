"""The dispute as client apps see it: in API answers and notifications."""

from __future__ import annotations

from app.models import Dispute, iso


def dispute_to_dict(dispute: Dispute, *, payment_public_id: str | None = None) -> dict:
    """`payment_public_id`: the dispute's payment's, when the caller has it."""
    return {
        "id": dispute.public_id,
        "object": "dispute",
        "livemode": dispute.livemode,
        "payment_id": payment_public_id or dispute.payment.public_id,
        "amount": dispute.amount,
        "currency": dispute.currency,
        "reason": dispute.reason,
        "status": dispute.status,
        "needs_response": dispute.needs_response,
        "evidence_due_by": iso(dispute.evidence_due_by),
        "has_evidence": dispute.has_evidence,
        "submission_count": dispute.submission_count,
        "evidence_text": dispute.evidence_text,
        "psp": dispute.psp,
        "psp_dispute_id": dispute.psp_dispute_id,
        "funds_withdrawn_at": iso(dispute.funds_withdrawn_at),
        "funds_reinstated_at": iso(dispute.funds_reinstated_at),
        "created_at": iso(dispute.created_at),
        "updated_at": iso(dispute.updated_at),
        "closed_at": iso(dispute.closed_at),
    }
