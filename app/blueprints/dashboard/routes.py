"""Dashboard pages: thin views over app/dashboard (queries, services, audit).

Tenancy: a merchant user's scope is its own merchant_id, always taken from the logged-in user;
an operator's scope is every merchant, narrowed by an optional `merchant_id` filter. Anything
outside the scope answers 404, exactly as if it did not exist.
"""

from __future__ import annotations

import json
import logging
import secrets
from decimal import Decimal
from urllib.parse import urlsplit

from flask import (
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import SelectChoice

from app.accounts import api_keys as keys
from app.accounts import audit
from app.accounts import service as services
from app.blueprints.dashboard import bp
from app.blueprints.dashboard.forms import (
    ApiKeyForm,
    ConfirmForm,
    EventFilterForm,
    ExpireForm,
    LoginForm,
    NotifyUrlForm,
    RefundForm,
    ResolveConflictForm,
    TransactionFilterForm,
)
from app.common.money import format_minor, format_money, parse_amount
from app.conflicts.service import refund_conflict as refund_at_psp
from app.conflicts.service import resolve_conflict as mark_resolved
from app.errors import PayBridgeError
from app.extensions import db, limiter, login_manager
from app.models import PaymentConflict, ReconciliationRun, StatusSource, User, iso, utcnow
from app.notifications.delivery import resend
from app.payments.service import expire_payment
from app.reconciliation.service import reconcile_payment, run_reconciliation
from app.refunds.service import create_refund, remaining_amount
from app.reporting import charts, queries, transactions
from app.reporting.queries import refund_timeline

log = logging.getLogger(__name__)

# A hash to compare against when the email is unknown, so both paths take the same time.
_DUMMY_HASH = generate_password_hash("paybridge-no-such-user")


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    try:
        return db.session.get(User, int(user_id))
    except (TypeError, ValueError):
        return None


# --- helpers ----------------------------------------------------------------------------------


def _is_operator() -> bool:
    return current_user.is_authenticated and current_user.is_operator


def scope_merchant_id() -> int | None:
    """The merchant whose data this request may see; None = all (operators only)."""
    if _is_operator():
        return request.values.get("merchant_id", type=int)
    if current_user.merchant_id is None:
        abort(403, "Your account is not linked to a merchant. Ask an operator to fix it.")
    return current_user.merchant_id


def own_merchant_id() -> int | None:
    """The scope for loading one object by id: a merchant's own, or anything for operators."""
    return None if _is_operator() else scope_merchant_id()


def settings_merchant():
    """The one merchant a keys/settings page acts on (operators pick it); None = must pick."""
    merchant_id = scope_merchant_id()
    if merchant_id is None:
        return None
    merchant = queries.get_merchant(merchant_id)
    if merchant is None:
        abort(404, "No such merchant.")
    return merchant


def client_ip() -> str | None:
    return request.remote_addr


def audit_action(action: str, *, merchant_id: int | None, **kwargs) -> None:
    """Append an audit row for the current user and request (committed with the action)."""
    user = current_user if current_user.is_authenticated else None
    audit.record(
        action,
        user=user,
        merchant_id=merchant_id,
        ip=client_ip(),
        user_agent=request.user_agent.string,
        **kwargs,
    )


def safe_next(target: str | None) -> str:
    """Only ever redirect after log-in to a page of this dashboard (no open redirect)."""
    if target:
        parts = urlsplit(target)
        if (
            not parts.scheme
            and not parts.netloc
            and target.startswith("/dashboard")
            and not target.startswith("//")
            and "\\" not in target
        ):
            return target
    return url_for("dashboard.overview")


def operator_required() -> None:
    if not _is_operator():
        abort(403, "Only operators can do this.")


def _login_rate_key() -> str:
    email = (request.form.get("email") or "").strip().lower()[:254]
    return f"dashboard-login:{request.remote_addr}:{email}"


def _login_failed(response: Response) -> bool:
    # Only failed attempts use up the allowance; a successful log-in redirects (302).
    return response.status_code != 302


def _psp_links(payment) -> list[tuple[str, str]]:
    base = (current_app.config.get("STRIPE_API_BASE") or "").rstrip("/")
    links = []
    if base.startswith("https://api.stripe.com"):
        key = current_app.config.get("STRIPE_SECRET_KEY") or ""
        mode = "test/" if "_test_" in key else ""
        if payment.psp_payment_intent_id:
            links.append(
                (
                    "Payment in the Stripe dashboard",
                    f"https://dashboard.stripe.com/{mode}payments/{payment.psp_payment_intent_id}",
                )
            )
        if payment.psp_subscription_id:
            links.append(
                (
                    "Subscription in the Stripe dashboard",
                    f"https://dashboard.stripe.com/{mode}subscriptions/{payment.psp_subscription_id}",
                )
            )
    elif base and payment.psp_session_id:
        links.append(
            ("Checkout session on the Stripe emulator", f"{base}/c/pay/{payment.psp_session_id}")
        )
    return links


@bp.context_processor
def dashboard_context() -> dict:
    return {
        "money": format_money,
        "minor": format_minor,
        "iso": iso,
        "is_operator": _is_operator(),
        "pretty_json": lambda value: json.dumps(value, indent=2, sort_keys=True, default=str),
    }


@bp.after_request
def private_headers(response: Response) -> Response:
    # Payment data and secrets: never cached, never framed.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
    )
    return response


# --- log-in -----------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("5/minute", key_func=_login_rate_key, methods=["POST"], deduct_when=_login_failed)
@limiter.limit("30/minute", methods=["POST"], deduct_when=_login_failed)
def login():
    """Log a dashboard user in; wrong email and wrong password look the same."""
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.overview"))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    if form.validate_on_submit():
        user = services.find_user_by_email(form.email.data)
        if user is None:
            check_password_hash(_DUMMY_HASH, form.password.data)
        if user is not None and user.check_password(form.password.data):
            session.clear()  # a fresh session on log-in: nothing carried over from before
            login_user(user)
            user.last_login_at = utcnow()
            audit_action(
                "login", merchant_id=user.merchant_id, target_type="user", target_id=user.id
            )
            db.session.commit()
            return redirect(safe_next(form.next.data))
        audit.record(
            "login_failed",
            user=user,
            merchant_id=user.merchant_id if user else None,
            ip=client_ip(),
            user_agent=request.user_agent.string,
            detail={"email": form.email.data.strip().lower()[:254]},
        )
        db.session.commit()
        form.password.errors.append("The email or the password is wrong.")
        return render_template("dashboard/login.html", form=form), 401
    status = 400 if request.method == "POST" else 200
    return render_template("dashboard/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Log out (POST with CSRF, so no other site can log a user out)."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400, "The form expired; please try again.")
    audit_action(
        "logout",
        merchant_id=current_user.merchant_id,
        target_type="user",
        target_id=current_user.id,
    )
    db.session.commit()
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("dashboard.login"))


# --- overview ---------------------------------------------------------------------------------


@bp.route("/")
@login_required
def overview():
    """Volumes, amounts, success rate and what needs attention."""
    merchant_id = scope_merchant_id()
    data = queries.overview(merchant_id=merchant_id)
    return render_template(
        "dashboard/overview.html",
        data=data,
        volume_chart=charts.volume_chart(data.days),
        amount_charts=[charts.amount_chart(data.days, cur) for cur in data.currencies[:3]],
        merchant_id=merchant_id,
        merchants=queries.merchants() if _is_operator() else [],
        cap=queries.COUNT_CAP,
    )


# --- transactions -----------------------------------------------------------------------------


def _decimal_or_none(value) -> Decimal | None:
    return value if isinstance(value, Decimal) else None


def _filter_from_form(form: TransactionFilterForm) -> transactions.TransactionFilter:
    return transactions.TransactionFilter(
        merchant_id=scope_merchant_id(),
        status=form.status.data or None,
        date_from=form.date_from.data,
        date_to=form.date_to.data,
        amount_min=_decimal_or_none(form.amount_min.data),
        amount_max=_decimal_or_none(form.amount_max.data),
        currency=form.currency.data or None,
        payment_type=form.payment_type.data or None,
        q=form.q.data or None,
    )


@bp.route("/payments")
@login_required
def payments():
    """The transactions table: filters, search, keyset pages."""
    form = TransactionFilterForm(formdata=request.args)
    valid = form.validate()
    if not valid:
        # Never show an unfiltered list that could be read as the filtered one.
        result = transactions.Page(rows=[], older=None, newer=None)
    else:
        txf = _filter_from_form(form)
        try:
            result = transactions.page(
                txf, after=request.args.get("after"), before=request.args.get("before")
            )
        except transactions.BadCursor as exc:
            flash(str(exc), "warning")
            result = transactions.page(txf)
    status = 200 if valid else 400
    query_args = {k: v for k, v in request.args.items() if k not in ("after", "before") and v}
    return (
        render_template(
            "dashboard/payments.html",
            form=form,
            page=result,
            query_args=query_args,
            merchants=queries.merchants() if _is_operator() else [],
        ),
        status,
    )


@bp.route("/payments/export.csv")
@login_required
def export_payments():
    """The filtered set as CSV, streamed row batch by row batch."""
    form = TransactionFilterForm(formdata=request.args)
    if not form.validate():
        abort(400, "The filters are not valid; fix them on the transactions page first.")
    txf = _filter_from_form(form)
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    return Response(
        stream_with_context(transactions.export_csv(txf)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="payments-{stamp}.csv"'},
    )


def _payment_or_404(public_id: str):
    payment = queries.payment_by_public_id(public_id, merchant_id=own_merchant_id())
    if payment is None:
        abort(404, "No such payment.")
    return payment


@bp.route("/payments/<public_id>")
@login_required
def payment_detail(public_id: str):
    """One payment's whole story."""
    payment = _payment_or_404(public_id)
    story = queries.payment_story(payment)

    return render_template(
        "dashboard/payment.html",
        story=story,
        psp_links=_psp_links(payment),
        confirm=ConfirmForm(),
        refund_events=refund_timeline(story.refunds),
        refundable=remaining_amount(payment),
    )


@bp.route("/payments/<public_id>/refund", methods=["GET", "POST"])
@login_required
def refund(public_id: str):
    """Refund all or part of a SUCCESS payment: amount and reason, confirm, then the PSP."""

    payment = _payment_or_404(public_id)
    back = url_for("dashboard.payment_detail", public_id=public_id)
    remaining = remaining_amount(payment)
    if payment.status != "SUCCESS" or remaining <= 0:
        why = "it is not paid" if payment.status != "SUCCESS" else "nothing remains to refund"
        flash(f"This payment cannot be refunded: {why}.", "warning")
        return redirect(back)
    form = RefundForm()
    if request.method == "GET":
        form.amount.data = format_minor(remaining, payment.currency)
        form.token.data = secrets.token_urlsafe(24)
        return render_template(
            "dashboard/refund.html", payment=payment, form=form, remaining=remaining, step="ask"
        )
    amount = None
    if form.validate_on_submit():
        try:
            amount = parse_amount(form.amount.data, payment.currency)
        except ValueError as exc:
            form.amount.errors.append(str(exc))
        else:
            if amount > remaining:
                form.amount.errors.append(
                    f"At most {format_money(remaining, payment.currency)} remains to refund."
                )
                amount = None
    if amount is None or form.confirmed.data != "yes":
        step = "ask" if amount is None else "confirm"
        return render_template(
            "dashboard/refund.html",
            payment=payment,
            form=form,
            remaining=remaining,
            step=step,
            amount=amount,
        ), (400 if amount is None else 200)

    merchant_id, reason = payment.merchant_id, form.reason.data
    try:
        made = create_refund(
            merchant_id,
            public_id,
            {"amount": amount, "reason": reason},
            idempotency_key=f"dashboard-refund-{form.token.data}",
            source=StatusSource.DASHBOARD,
        )
        outcome = {"result": "ok", "refund": made.public_id, "status": made.status}
        money = format_money(made.amount, made.currency)
        if made.status == "succeeded":
            flash(f"Refund {made.public_id} of {money} succeeded.", "success")
        elif made.psp_refund_id is None:
            flash(
                f"Refund {made.public_id} of {money} is reserved but the PSP could not be "
                "reached; reconciliation submits it (the same refund, never a second one).",
                "warning",
            )
        elif made.status == "pending":
            flash(
                f"Refund {made.public_id} of {money} is pending at the PSP; "
                "this page shows the outcome once it is confirmed.",
                "success",
            )
        else:
            flash(f"Refund {made.public_id} of {money} failed: {made.failure_reason}.", "error")
    except PayBridgeError as exc:
        db.session.rollback()
        outcome = {"result": "error", "code": exc.code}
        flash(f"The refund was not made: {exc.message}", "error")
    audit_action(
        "payment_refund",
        merchant_id=merchant_id,
        target_type="payment",
        target_id=public_id,
        detail={**outcome, "amount": amount, "currency": payment.currency, "reason": reason},
    )
    db.session.commit()
    return redirect(back)


@bp.route("/payments/<public_id>/expire", methods=["GET", "POST"])
@login_required
def expire(public_id: str):
    """Confirm, then expire a payment that is not final (PSP session expired, FAILED)."""
    payment = _payment_or_404(public_id)
    form = ExpireForm()
    if payment.is_final:
        flash(f"This payment is already {payment.status}; nothing to expire.", "warning")
        return redirect(url_for("dashboard.payment_detail", public_id=public_id))
    if not form.validate_on_submit():
        code = 400 if request.method == "POST" else 200
        return render_template("dashboard/confirm_expire.html", payment=payment, form=form), code

    payment_id, merchant_id, reason = payment.id, payment.merchant_id, form.reason.data.strip()
    try:
        expired = expire_payment(payment_id, source=StatusSource.DASHBOARD, reason=reason)
        outcome = {"result": "ok", "status": expired.status, "reason": reason}
        flash(f"Payment {public_id} is now {expired.status}.", "success")
    except PayBridgeError as exc:
        db.session.rollback()
        outcome = {"result": "error", "code": exc.code, "reason": reason}
        flash(f"The payment was not expired: {exc.message}", "error")
    audit_action(
        "payment_expire",
        merchant_id=merchant_id,
        target_type="payment",
        target_id=public_id,
        detail=outcome,
    )
    db.session.commit()
    return redirect(url_for("dashboard.payment_detail", public_id=public_id))


def _conflict_or_404(payment, conflict_id: int):
    """One of this payment's conflicts (the payment is already in the user's scope)."""

    conflict = db.session.get(PaymentConflict, conflict_id)
    if conflict is None or conflict.payment_id != payment.id:
        abort(404, "No such conflict.")
    return conflict


def _actor() -> str:
    return f"{current_user.email} (user {current_user.id})"


@bp.route("/payments/<public_id>/conflicts/<int:conflict_id>/refund", methods=["GET", "POST"])
@login_required
def refund_conflict(public_id: str, conflict_id: int):
    """Confirm, then refund at the PSP a payment made after PayBridge had FAILED it."""
    payment = _payment_or_404(public_id)
    conflict = _conflict_or_404(payment, conflict_id)
    back = url_for("dashboard.payment_detail", public_id=public_id)
    if conflict.resolved_at is not None:
        flash(f"This conflict is already resolved: {conflict.resolution or 'no note'}.", "warning")
        return redirect(back)
    if conflict.kind != conflict.KIND_PAID_AFTER_FAILED:
        flash("Only a payment made after PayBridge failed it can be refunded here.", "warning")
        return redirect(back)
    form = ConfirmForm()
    if not form.validate_on_submit():
        code = 400 if request.method == "POST" else 200
        return render_template(
            "dashboard/confirm_conflict.html",
            payment=payment,
            conflict=conflict,
            form=form,
            action="refund",
            back=back,
        ), code

    merchant_id = payment.merchant_id
    try:
        done = refund_at_psp(conflict_id, actor=_actor())
        outcome = {"result": "ok", "resolution": done.resolution}
        flash(f"Conflict resolved — {done.resolution}.", "success")
    except PayBridgeError as exc:
        db.session.rollback()
        outcome = {"result": "error", "code": exc.code}
        flash(f"The customer was not refunded: {exc.message}", "error")
    audit_action(
        "conflict_refund",
        merchant_id=merchant_id,
        target_type="payment",
        target_id=public_id,
        detail={"conflict_id": conflict_id, **outcome},
    )
    db.session.commit()
    return redirect(back)


@bp.route("/payments/<public_id>/conflicts/<int:conflict_id>/resolve", methods=["GET", "POST"])
@login_required
def resolve_conflict(public_id: str, conflict_id: int):
    """Confirm with a note, then mark a conflict resolved (it was settled some other way)."""
    payment = _payment_or_404(public_id)
    conflict = _conflict_or_404(payment, conflict_id)
    back = url_for("dashboard.payment_detail", public_id=public_id)
    if conflict.resolved_at is not None:
        flash(f"This conflict is already resolved: {conflict.resolution or 'no note'}.", "warning")
        return redirect(back)
    form = ResolveConflictForm()
    if not form.validate_on_submit():
        code = 400 if request.method == "POST" else 200
        return render_template(
            "dashboard/confirm_conflict.html",
            payment=payment,
            conflict=conflict,
            form=form,
            action="resolve",
            back=back,
        ), code

    merchant_id, note = payment.merchant_id, form.note.data
    try:
        done = mark_resolved(conflict_id, actor=_actor(), note=note)
        outcome = {"result": "ok", "resolution": done.resolution}
        flash(f"Conflict marked resolved — {done.resolution}.", "success")
    except PayBridgeError as exc:
        db.session.rollback()
        outcome = {"result": "error", "code": exc.code}
        flash(f"The conflict was not marked resolved: {exc.message}", "error")
    audit_action(
        "conflict_resolve",
        merchant_id=merchant_id,
        target_type="payment",
        target_id=public_id,
        detail={"conflict_id": conflict_id, "note": note[:400], **outcome},
    )
    db.session.commit()
    return redirect(back)


@bp.route("/payments/<public_id>/reconcile", methods=["GET", "POST"])
@login_required
def reconcile(public_id: str):
    """Confirm, then ask the PSP for this payment's truth and apply it."""
    payment = _payment_or_404(public_id)
    form = ConfirmForm()
    if not form.validate_on_submit():
        code = 400 if request.method == "POST" else 200
        return render_template("dashboard/confirm_reconcile.html", payment=payment, form=form), code

    payment_id, merchant_id = payment.id, payment.merchant_id
    try:
        result = reconcile_payment(payment_id, trigger="dashboard")
        outcome = {"result": "ok", **_jsonable(result)}
        flash(f"Reconciled {public_id}: {_describe(result)}", "success")
    except PayBridgeError as exc:
        db.session.rollback()
        outcome = {"result": "error", "code": exc.code}
        flash(f"Reconciliation did not finish: {exc.message}", "error")
    audit_action(
        "payment_reconcile",
        merchant_id=merchant_id,
        target_type="payment",
        target_id=public_id,
        detail=outcome,
    )
    db.session.commit()
    return redirect(url_for("dashboard.payment_detail", public_id=public_id))


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


@bp.route("/notifications/<int:notification_id>/resend", methods=["GET", "POST"])
@login_required
def resend_notification(notification_id: int):
    """Confirm, then send a notification to the merchant's notify URL again."""
    notification = queries.notification_in_scope(notification_id, merchant_id=own_merchant_id())
    if notification is None:
        abort(404, "No such notification.")
    payment = notification.payment
    back = (
        url_for("dashboard.payment_detail", public_id=payment.public_id)
        if payment
        else url_for("dashboard.overview")
    )
    form = ConfirmForm()
    if not form.validate_on_submit():
        code = 400 if request.method == "POST" else 200
        return (
            render_template(
                "dashboard/confirm_resend.html", notification=notification, form=form, back=back
            ),
            code,
        )

    msg_id, merchant_id = notification.public_id, notification.merchant_id
    try:
        resent = resend(notification_id)
        outcome = {"result": "ok", "status": resent.status}
        flash(f"Notification {msg_id} is queued to be sent again.", "success")
    except PayBridgeError as exc:
        db.session.rollback()
        outcome = {"result": "error", "code": exc.code}
        flash(f"The notification was not resent: {exc.message}", "error")
    audit_action(
        "notification_resend",
        merchant_id=merchant_id,
        target_type="notification",
        target_id=msg_id,
        detail=outcome,
    )
    db.session.commit()
    return redirect(back)


# --- reconciliation runs ----------------------------------------------------------------------


@bp.route("/reconciliation")
@login_required
def recon_runs():
    """Reconciliation runs, newest first."""
    scope_merchant_id()
    runs = queries.recon_runs(before_id=request.args.get("before", type=int))
    more = len(runs) > queries.LIST_PAGE_SIZE
    return render_template(
        "dashboard/recon_runs.html",
        runs=runs[: queries.LIST_PAGE_SIZE],
        next_before=runs[queries.LIST_PAGE_SIZE - 1].id if more else None,
        form=ConfirmForm(),
    )


@bp.route("/reconciliation/<int:run_id>")
@login_required
def recon_run(run_id: int):
    """One run and the payments it looked at (a merchant sees only its own)."""

    run = db.session.get(ReconciliationRun, run_id)
    if run is None:
        abort(404, "No such reconciliation run.")
    details = queries.recon_details_for(run, merchant_id=own_merchant_id())
    return render_template("dashboard/recon_run.html", run=run, details=details)


@bp.route("/reconciliation/run", methods=["GET", "POST"])
@login_required
def recon_run_now():
    """Confirm, then run a full reconciliation pass now (operators: it spans every merchant)."""
    operator_required()
    form = ConfirmForm()
    if not form.validate_on_submit():
        code = 400 if request.method == "POST" else 200
        return render_template("dashboard/confirm_recon_run.html", form=form), code

    try:
        run = run_reconciliation(trigger="dashboard")
    except PayBridgeError as exc:
        db.session.rollback()
        audit_action(
            "reconciliation_run", merchant_id=None, detail={"result": "error", "code": exc.code}
        )
        db.session.commit()
        flash(f"Reconciliation did not run: {exc.message}", "error")
        return redirect(url_for("dashboard.recon_runs"))
    run_id = run.id
    audit_action(
        "reconciliation_run",
        merchant_id=None,
        target_type="reconciliation_run",
        target_id=run_id,
        detail={"result": "ok", "status": run.status},
    )
    db.session.commit()
    flash(f"Reconciliation run {run_id} finished: {run.status}.", "success")
    return redirect(url_for("dashboard.recon_run", run_id=run_id))


# --- webhook events ---------------------------------------------------------------------------


@bp.route("/events")
@login_required
def events():
    """PSP webhook events, filterable by outcome and type."""
    merchant_id = scope_merchant_id()
    form = EventFilterForm(formdata=request.args)
    form.outcome.choices = [SelectChoice("", "Any outcome")] + [
        SelectChoice(o, o.replace("_", " ")) for o in queries.EVENT_OUTCOMES
    ]
    form.event_type.choices = [SelectChoice("", "Any type")] + [
        SelectChoice(t) for t in queries.event_types()
    ]
    valid = form.validate()
    rows = queries.events(
        merchant_id=merchant_id,
        outcome=form.outcome.data if valid and form.outcome.data else None,
        event_type=form.event_type.data if valid and form.event_type.data else None,
        before_id=request.args.get("before", type=int),
    )
    more = len(rows) > queries.LIST_PAGE_SIZE
    rows = rows[: queries.LIST_PAGE_SIZE]
    query_args = {k: v for k, v in request.args.items() if k != "before" and v}
    return (
        render_template(
            "dashboard/events.html",
            form=form,
            rows=rows,
            next_before=rows[-1].id if more and rows else None,
            query_args=query_args,
            merchants=queries.merchants() if _is_operator() else [],
        ),
        200 if valid else 400,
    )


@bp.route("/events/<int:event_id>")
@login_required
def event_detail(event_id: int):
    """One PSP event with its raw payload."""
    event = queries.event_in_scope(event_id, merchant_id=own_merchant_id())
    if event is None:
        abort(404, "No such event.")
    return render_template("dashboard/event.html", event=event)


# --- API keys ---------------------------------------------------------------------------------


@bp.route("/api-keys", methods=["GET", "POST"])
@login_required
def api_keys():
    """List keys by prefix; create one (its raw value is shown on this response only)."""
    merchant = settings_merchant()
    if merchant is None:
        return render_template(
            "dashboard/pick_merchant.html",
            merchants=queries.merchants(),
            endpoint="dashboard.api_keys",
            title="API keys",
        )
    form = ApiKeyForm()
    raw_key = None
    code = 200
    if form.validate_on_submit():
        key, raw_key = keys.create_api_key(merchant, form.name.data)
        audit_action(
            "api_key_create",
            merchant_id=merchant.id,
            target_type="api_key",
            target_id=key.prefix,
            detail={"name": key.name},
        )
        db.session.commit()
        form = ApiKeyForm(formdata=None)
    elif request.method == "POST":
        code = 400
    return (
        render_template(
            "dashboard/api_keys.html",
            merchant=merchant,
            keys=keys.of_merchant(merchant.id),
            form=form,
            raw_key=raw_key,
            confirm=ConfirmForm(),
        ),
        code,
    )


@bp.route("/api-keys/<int:key_id>/revoke", methods=["GET", "POST"])
@login_required
def revoke_api_key(key_id: int):
    """Confirm, then revoke a key: requests with it fail from now on."""
    merchant = settings_merchant()
    if merchant is None:
        abort(404, "No such API key.")
    key = next((k for k in keys.of_merchant(merchant.id) if k.id == key_id), None)
    if key is None:
        abort(404, "No such API key.")
    form = ConfirmForm()
    if not form.validate_on_submit():
        code = 400 if request.method == "POST" else 200
        return render_template(
            "dashboard/confirm_revoke.html", key=key, merchant=merchant, form=form
        ), code
    keys.revoke_api_key(merchant.id, key_id)
    audit_action(
        "api_key_revoke",
        merchant_id=merchant.id,
        target_type="api_key",
        target_id=key.prefix,
        detail={"name": key.name},
    )
    db.session.commit()
    flash(f"API key {key.prefix}… is revoked.", "success")
    return redirect(_merchant_url("dashboard.api_keys", merchant.id))


def _merchant_url(endpoint: str, merchant_id: int, **kwargs) -> str:
    if _is_operator():
        kwargs["merchant_id"] = merchant_id
    return url_for(endpoint, **kwargs)


# --- settings: notify URL and signing secret ----------------------------------------------------


@bp.route("/settings", methods=["GET"])
@login_required
def settings():
    """Notify URL and signing secret (hidden until revealed)."""
    merchant = settings_merchant()
    if merchant is None:
        return render_template(
            "dashboard/pick_merchant.html",
            merchants=queries.merchants(),
            endpoint="dashboard.settings",
            title="Settings",
        )
    form = NotifyUrlForm(formdata=None, notify_url=merchant.notify_url or "")
    return render_template(
        "dashboard/settings.html", merchant=merchant, form=form, confirm=ConfirmForm(), secret=None
    )


@bp.route("/settings/notify-url", methods=["POST"])
@login_required
def set_notify_url():
    """Change where PayBridge sends this merchant's notifications."""
    merchant = settings_merchant()
    if merchant is None:
        abort(404, "No such merchant.")
    form = NotifyUrlForm()
    error = None
    if form.validate_on_submit():
        try:
            old, new = services.set_notify_url(merchant, form.notify_url.data)
        except PayBridgeError as exc:
            db.session.rollback()
            error = exc.message
        else:
            audit_action(
                "notify_url_change",
                merchant_id=merchant.id,
                target_type="merchant",
                target_id=merchant.id,
                detail={"from": old, "to": new},
            )
            db.session.commit()
            flash("The notify URL is saved.", "success")
            return redirect(_merchant_url("dashboard.settings", merchant.id))
    if error:
        form.notify_url.errors = [*form.notify_url.errors, error]
    return render_template(
        "dashboard/settings.html", merchant=merchant, form=form, confirm=ConfirmForm(), secret=None
    ), 400


@bp.route("/settings/secret/reveal", methods=["POST"])
@login_required
def reveal_secret():
    """Show the signing secret on this one response (POST, audited, never cached)."""
    merchant = settings_merchant()
    if merchant is None:
        abort(404, "No such merchant.")
    confirm = ConfirmForm()
    if not confirm.validate_on_submit():
        abort(400, "The form expired; please try again.")
    audit_action(
        "secret_reveal", merchant_id=merchant.id, target_type="merchant", target_id=merchant.id
    )
    db.session.commit()
    form = NotifyUrlForm(formdata=None, notify_url=merchant.notify_url or "")
    return render_template(
        "dashboard/settings.html",
        merchant=merchant,
        form=form,
        confirm=ConfirmForm(),
        secret=merchant.signing_secret,
    )


@bp.route("/settings/secret/rotate", methods=["GET", "POST"])
@login_required
def rotate_secret():
    """Confirm, then rotate the signing secret (the previous one keeps signing for a while)."""
    merchant = settings_merchant()
    if merchant is None:
        abort(404, "No such merchant.")
    form = ConfirmForm()
    if not form.validate_on_submit():
        code = 400 if request.method == "POST" else 200
        return render_template("dashboard/confirm_rotate.html", merchant=merchant, form=form), code
    services.rotate_signing_secret(merchant)
    audit_action(
        "secret_rotate", merchant_id=merchant.id, target_type="merchant", target_id=merchant.id
    )
    db.session.commit()
    flash(
        "A new signing secret is active. Both the new and the previous secret sign "
        "notifications until your app verifies with the new one.",
        "success",
    )
    return redirect(_merchant_url("dashboard.settings", merchant.id))


# --- audit log --------------------------------------------------------------------------------


@bp.route("/audit")
@login_required
def audit_log():
    """What dashboard users did, newest first."""
    merchant_id = scope_merchant_id()
    action = request.args.get("action") or None
    if action and action not in audit.ACTIONS:
        action = None
    rows = audit.entries(
        merchant_id=merchant_id, action=action, before_id=request.args.get("before", type=int)
    )
    more = len(rows) > audit.AUDIT_PAGE_SIZE
    rows = rows[: audit.AUDIT_PAGE_SIZE]
    return render_template(
        "dashboard/audit.html",
        rows=rows,
        actions=audit.ACTIONS,
        action=action,
        next_before=rows[-1][0].id if more and rows else None,
        merchant_id=merchant_id,
        merchants=queries.merchants() if _is_operator() else [],
    )
