"""Reconciliation: the runs and what each looked at, a full run now, and one payment at a time."""

from __future__ import annotations

import json

from flask import abort, render_template, url_for
from flask_login import login_required

from app.blueprints.dashboard import bp
from app.blueprints.dashboard.actions import Done, form_page, perform
from app.blueprints.dashboard.forms import ConfirmForm
from app.blueprints.dashboard.shared import (
    before_id,
    before_link,
    operator_required,
    own_merchant_id,
    payment_to_act_on,
    payment_url,
    scope_merchant_id,
    view_livemode,
)
from app.common.cursors import older_page
from app.reconciliation.service import reconcile_payment, run_reconciliation
from app.reporting import queries


@bp.route("/reconciliation")
@login_required
def recon_runs():
    """Reconciliation runs, newest first."""
    scope_merchant_id()  # a user linked to no merchant sees nothing here either (403)
    runs = queries.recon_runs(before_id=before_id("dashboard.recon_runs"))
    runs, last_id = older_page(runs, queries.LIST_PAGE_SIZE)
    return render_template(
        "dashboard/recon_runs.html",
        runs=runs,
        next_before=before_link(last_id, "dashboard.recon_runs"),
        form=ConfirmForm(),
    )


@bp.route("/reconciliation/<int:run_id>")
@login_required
def recon_run(run_id: int):
    """One run and the payments of the mode in view it looked at (a merchant sees only its
    own)."""
    run = queries.recon_run(run_id)
    if run is None:
        abort(404, "No such reconciliation run.")
    details = queries.recon_details_for(
        run, merchant_id=own_merchant_id(), livemode=view_livemode()
    )
    return render_template("dashboard/recon_run.html", run=run, details=details)


@bp.route("/reconciliation/run", methods=["GET", "POST"])
@login_required
def recon_run_now():
    """Confirm, then run a full reconciliation pass now (operators: it spans every merchant)."""
    operator_required()
    form = ConfirmForm()
    if not form.validate_on_submit():
        return form_page("dashboard/confirm_recon_run.html", form=form)
    return perform(
        "reconciliation_run",
        merchant_id=None,
        target=None,
        act=_run_now,
        failure="Reconciliation did not run",
        back=url_for("dashboard.recon_runs"),
    )


def _run_now() -> Done:
    run = run_reconciliation(trigger="dashboard")
    return Done(
        f"Reconciliation run {run.id} finished: {run.status}.",
        {"status": run.status},
        target=("reconciliation_run", run.id),
        back=url_for("dashboard.recon_run", run_id=run.id),
    )


@bp.route("/payments/<public_id>/reconcile", methods=["GET", "POST"])
@login_required
def reconcile(public_id: str):
    """Confirm, then ask the PSP for this payment's truth and apply it."""
    payment = payment_to_act_on(public_id)
    form = ConfirmForm()
    if not form.validate_on_submit():
        return form_page("dashboard/confirm_reconcile.html", payment=payment, form=form)
    payment_id = payment.id
    return perform(
        "payment_reconcile",
        merchant_id=payment.merchant_id,
        target=("payment", public_id),
        act=lambda: _reconciled(public_id, reconcile_payment(payment_id, trigger="dashboard")),
        failure="Reconciliation did not finish",
        back=payment_url(public_id),
    )


def _reconciled(public_id: str, result) -> Done:
    return Done(f"Reconciled {public_id}: {_describe(result)}", _jsonable(result))


def _jsonable(value) -> dict:
    if not isinstance(value, dict):
        return {"value": str(value)}
    return json.loads(json.dumps(value, default=str))


def _describe(result) -> str:
    """One sentence from reconcile_payment's entry: what changed, or why nothing did."""
    if not isinstance(result, dict):
        return str(result)
    if result.get("error"):
        text = (
            f"the PSP could not be asked ({result['error']}); status stays {result.get('status')}"
        )
    elif result.get("changed") and result.get("from") and result.get("to"):
        text = f"{result['from']} → {result['to']}"
    else:
        text = f"no change, the status is {result.get('status')}"
    why = result.get("why")
    return f"{text} ({why})." if why else f"{text}."
