"""Disputes: what needs a response (due soonest first) and every dispute, one dispute, and the
merchant's two answers: submit text evidence, or accept it. The banner on every page is
`dashboard_context`'s `disputes_due`."""

from __future__ import annotations

from flask import abort, render_template, url_for
from flask_login import login_required

from app.blueprints.dashboard import bp
from app.blueprints.dashboard.actions import Done, decline, form_page, perform
from app.blueprints.dashboard.forms import ConfirmForm, DisputeEvidenceForm
from app.blueprints.dashboard.shared import (
    act_in_view,
    before_id,
    before_link,
    own_merchant_id,
    scope_merchant_id,
    view_livemode,
)
from app.disputes import service
from app.models import Dispute, utcnow
from app.reporting import disputes as queries


@bp.route("/disputes")
@login_required
def disputes():
    """Disputes needing a response they can still get, due soonest first; those past due;
    then every dispute, newest first."""
    merchant_id, livemode, now = scope_merchant_id(), view_livemode(), utcnow()
    rows, last_id = queries.list_disputes(
        merchant_id, livemode=livemode, before=before_id("dashboard.disputes")
    )
    return render_template(
        "dashboard/disputes.html",
        due=queries.disputes_due(merchant_id, livemode=livemode, now=now),
        due_total=queries.due_summary(merchant_id, livemode=livemode, now=now).count,
        past_due=queries.disputes_past_due(merchant_id, livemode=livemode, now=now),
        rows=rows,
        older=before_link(last_id, "dashboard.disputes"),
        now=now,
        due_limit=queries.DUE_LIMIT,
    )


def _dispute_or_404(public_id: str) -> Dispute:
    dispute = queries.dispute_in_scope(public_id, merchant_id=own_merchant_id())
    if dispute is None:
        abort(404, "No such dispute.")
    return dispute


def _dispute_url(public_id: str) -> str:
    return url_for("dashboard.dispute_detail", public_id=public_id)


@bp.route("/disputes/<public_id>")
@login_required
def dispute_detail(public_id: str):
    """One dispute, its payment, and (while it needs one) the forms to answer it."""
    dispute = _dispute_or_404(public_id)
    return render_template(
        "dashboard/dispute.html",
        dispute=dispute,
        form=DisputeEvidenceForm(),
        accept_form=ConfirmForm(),
        past_due=_past_due(dispute),
    )


def _past_due(dispute: Dispute) -> bool:
    return dispute.past_due(utcnow())


def _answerable(dispute: Dispute) -> Dispute:
    """The dispute an answer is about: in the scope, in the mode in view, and open."""
    back = _dispute_url(dispute.public_id)
    act_in_view(dispute.livemode, "dispute", back)
    if dispute.is_closed:
        abort(decline(f"This dispute is closed ({dispute.status_label.lower()}).", back))
    return dispute


@bp.route("/disputes/<public_id>/evidence", methods=["POST"])
@login_required
def dispute_evidence(public_id: str):
    """Write text evidence, confirm it, then submit it to the PSP."""
    dispute = _answerable(_dispute_or_404(public_id))
    form = DisputeEvidenceForm()
    if not form.validate_on_submit():
        return form_page("dashboard/dispute.html", dispute=dispute, form=form,
                         accept_form=ConfirmForm(), past_due=_past_due(dispute))  # fmt: skip
    if form.confirmed.data != "yes":
        return render_template("dashboard/dispute_confirm.html", dispute=dispute, form=form)
    dispute_id, text = dispute.id, form.text.data
    return perform(
        "dispute_evidence",
        merchant_id=dispute.merchant_id,
        target=("dispute", public_id),
        act=lambda: _submitted(service.submit_evidence(dispute_id, text)),
        failure="The evidence was not submitted",
        back=_dispute_url(public_id),
        detail={"characters": len(text)},
    )


@bp.route("/disputes/<public_id>/accept", methods=["GET", "POST"])
@login_required
def accept_dispute(public_id: str):
    """Confirm, then accept the dispute at the PSP (not contested: it is lost)."""
    dispute = _answerable(_dispute_or_404(public_id))
    form = ConfirmForm()
    if not form.validate_on_submit():
        return form_page("dashboard/dispute_accept.html", dispute=dispute, form=form)
    dispute_id = dispute.id
    return perform(
        "dispute_accept",
        merchant_id=dispute.merchant_id,
        target=("dispute", public_id),
        act=lambda: _accepted(service.accept_dispute(dispute_id)),
        failure="The dispute was not accepted",
        back=_dispute_url(public_id),
    )


def _submitted(dispute: Dispute) -> Done:
    message = f"Evidence submitted for dispute {dispute.public_id}: {dispute.status_label}."
    return Done(message, {"status": dispute.status})


def _accepted(dispute: Dispute) -> Done:
    message = f"Dispute {dispute.public_id} accepted: {dispute.status_label}."
    return Done(message, {"status": dispute.status})
