"""The audit log: what dashboard users did, newest first."""

from __future__ import annotations

from flask import render_template, request
from flask_login import login_required

from app.accounts import audit
from app.blueprints.dashboard import bp
from app.blueprints.dashboard.forms import one_of
from app.blueprints.dashboard.shared import (
    before_id,
    before_link,
    merchant_filter_choices,
    scope_merchant_id,
)
from app.common.cursors import older_page


@bp.route("/audit")
@login_required
def audit_log():
    """What dashboard users did, newest first."""
    merchant_id = scope_merchant_id()
    action = one_of(request.args.get("action"), audit.ACTIONS)
    before = before_id("dashboard.audit")
    rows = audit.entries(merchant_id=merchant_id, action=action, before_id=before)
    rows, last_id = older_page(rows, audit.AUDIT_PAGE_SIZE, key=lambda row: row[0].id)
    return render_template(
        "dashboard/audit.html",
        rows=rows,
        actions=audit.ACTIONS,
        action=action,
        next_before=before_link(last_id, "dashboard.audit"),
        merchant_id=merchant_id,
        merchants=merchant_filter_choices(),
    )
