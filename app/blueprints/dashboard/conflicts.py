"""Settling a payment conflict (the PSP and PayBridge disagree): refund the customer at the PSP,
or mark it resolved with a note saying how it was settled."""

from __future__ import annotations

from flask import abort
from flask_login import current_user, login_required

from app.blueprints.dashboard import bp
from app.blueprints.dashboard.actions import Done, decline, form_page, perform
from app.blueprints.dashboard.forms import ConfirmForm, ResolveConflictForm
from app.blueprints.dashboard.shared import payment_to_act_on, payment_url
from app.conflicts.service import refund_conflict as refund_at_psp
from app.conflicts.service import resolve_conflict as mark_resolved
from app.models import Payment, PaymentConflict
from app.reporting import queries


@bp.route("/payments/<public_id>/conflicts/<int:conflict_id>/refund", methods=["GET", "POST"])
@login_required
def refund_conflict(public_id: str, conflict_id: int):
    """Confirm, then refund at the PSP a payment made after PayBridge had FAILED it."""
    payment, conflict = _conflict_or_404(public_id, conflict_id)
    if why := _why_not(conflict, refund=True):
        return decline(why, payment_url(public_id))
    form = ConfirmForm()
    if not form.validate_on_submit():
        return _confirm_page(payment, conflict, form, "refund")
    actor = _actor()
    return perform(
        "conflict_refund",
        merchant_id=payment.merchant_id,
        target=("payment", public_id),
        act=lambda: _settled("Conflict resolved", refund_at_psp(conflict_id, actor=actor)),
        failure="The customer was not refunded",
        back=payment_url(public_id),
        detail={"conflict_id": conflict_id},
    )


@bp.route("/payments/<public_id>/conflicts/<int:conflict_id>/resolve", methods=["GET", "POST"])
@login_required
def resolve_conflict(public_id: str, conflict_id: int):
    """Confirm with a note, then mark a conflict resolved (it was settled some other way)."""
    payment, conflict = _conflict_or_404(public_id, conflict_id)
    if why := _why_not(conflict, refund=False):
        return decline(why, payment_url(public_id))
    form = ResolveConflictForm()
    if not form.validate_on_submit():
        return _confirm_page(payment, conflict, form, "resolve")
    actor, note = _actor(), form.note.data
    return perform(
        "conflict_resolve",
        merchant_id=payment.merchant_id,
        target=("payment", public_id),
        act=lambda: _settled(
            "Conflict marked resolved", mark_resolved(conflict_id, actor=actor, note=note)
        ),
        failure="The conflict was not marked resolved",
        back=payment_url(public_id),
        detail={"conflict_id": conflict_id, "note": note[:400]},
    )


def _conflict_or_404(public_id: str, conflict_id: int) -> tuple[Payment, PaymentConflict]:
    """The payment in the user's scope and mode in view, and one of its conflicts."""
    payment = payment_to_act_on(public_id)
    conflict = queries.payment_conflict(payment, conflict_id)
    if conflict is None:
        abort(404, "No such conflict.")
    return payment, conflict


def _why_not(conflict: PaymentConflict, *, refund: bool) -> str | None:
    """Why this conflict cannot be settled here now; None when it can."""
    if conflict.resolved_at is not None:
        return f"This conflict is already resolved: {conflict.resolution or 'no note'}."
    if refund and conflict.kind != conflict.KIND_PAID_AFTER_FAILED:
        return "Only a payment made after PayBridge failed it can be refunded here."
    return None


def _confirm_page(payment: Payment, conflict: PaymentConflict, form, action: str):
    return form_page(
        "dashboard/confirm_conflict.html",
        payment=payment,
        conflict=conflict,
        form=form,
        action=action,
        back=payment_url(payment.public_id),
    )


def _actor() -> str:
    return f"{current_user.email} (user {current_user.id})"


def _settled(what: str, conflict: PaymentConflict) -> Done:
    return Done(f"{what} — {conflict.resolution}.", {"resolution": conflict.resolution})
