"""The one way a dashboard action is done: confirm → act → audit → commit → flash → redirect.

A view checks what it may do and shows its confirmation page (`form_page`) until the form
validates; then `perform` calls the service through `act`, appends the audit row, commits both
together, flashes what happened and redirects. When the service refuses (a PayBridgeError), the
transaction is rolled back and the refusal is still audited and flashed, with its code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import flash, redirect, render_template, request
from werkzeug.wrappers import Response

from app.blueprints.dashboard.shared import audit_action
from app.errors import PayBridgeError
from app.extensions import db


@dataclass(frozen=True)
class Done:
    """What an action did: the flash message, and what its audit row says about it."""

    message: str = ""
    detail: dict = field(default_factory=dict)
    category: str = "success"
    target: tuple[str, str | int] | None = None  # when the target exists only afterwards
    back: str | None = None  # when where to go next depends on the result
    value: Any = None  # what the page shows once (a new API key)


def form_status() -> int:
    """The status of a page whose form is still to be (validly) sent: 200 when asked for (GET),
    400 when a POST did not validate."""
    return 400 if request.method == "POST" else 200


def form_page(template: str, **context) -> tuple[str, int]:
    """The confirmation (or any form) page, with `form_status()`."""
    return render_template(template, **context), form_status()


def decline(message: str, back: str) -> Response:
    """Nothing to do here: say why and go back."""
    flash(message, "warning")
    return redirect(back)


def audited(
    action: str,
    *,
    merchant_id: int | None,
    target: tuple[str, str | int] | None = None,
    act: Callable[[], Done] | None = None,
    failure: str | None = None,
    detail: dict | None = None,
) -> Done:
    """Do `act` (if any), append the audit row and commit both; what it did, to show.

    With `failure` (the start of the error message), a PayBridgeError is rolled back and audited
    as {"result": "error", "code": ...}, and success as {"result": "ok", ...}. Without it the
    action cannot be refused: an error propagates, and the detail carries no result. `detail`
    holds what is audited whatever the outcome; `target` is (type, id) of what was acted on.
    """
    try:
        done = act() if act else Done()
        result = "ok"
    except PayBridgeError as exc:
        if failure is None:
            raise
        db.session.rollback()
        done = Done(f"{failure}: {exc.message}", {"code": exc.code}, category="error")
        result = "error"
    target_type, target_id = done.target or target or (None, None)
    outcome = {"result": result} if failure is not None else {}
    audit_action(
        action,
        merchant_id=merchant_id,
        target_type=target_type,
        target_id=target_id,
        detail={**outcome, **done.detail, **(detail or {})},
    )
    db.session.commit()
    return done


def perform(
    action: str,
    *,
    merchant_id: int | None,
    target: tuple[str, str | int] | None,
    act: Callable[[], Done],
    back: str,
    failure: str | None = None,
    detail: dict | None = None,
) -> Response:
    """`audited(...)`, then flash what happened and redirect to `back` (or where `act` says)."""
    done = audited(
        action, merchant_id=merchant_id, target=target, act=act, failure=failure, detail=detail
    )
    if done.message:
        flash(done.message, done.category)
    return redirect(done.back or back)
