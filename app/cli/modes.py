"""`flask modes adopt-live`: for a deployment that ran on a live Stripe key before PayBridge knew
test and live modes, mark the data of that time live.

Migration 0012 made every existing row test mode (false), which is right for a deployment that
ran on a test key and wrong for one that took real money: its payments would be served with the
test key, and its old API keys would make test payments. This marks them live once. What came
after modes (anything from the first pbk_test_/pbk_live_ key on) is never touched, so running it
again changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import CursorResult, func, or_, select, update

from app.extensions import db
from app.models import ApiKey, IdempotencyRecord, Payment, PspEvent, Subscription
from app.models.merchant import API_KEY_MODE_PREFIXES

modes = AppGroup("modes", help="Stripe's test and live modes.")

# What adopt-live marks, each by the time its row was made (the time that says "before modes").
ADOPTED = (
    ("API keys", ApiKey, ApiKey.created_at),
    ("payments", Payment, Payment.created_at),
    ("subscriptions", Subscription, Subscription.created_at),
    ("PSP events", PspEvent, PspEvent.received_at),
    ("Idempotency-Keys", IdempotencyRecord, IdempotencyRecord.created_at),
)


def modes_began() -> datetime | None:
    """When the first key of a mode (pbk_test_…, pbk_live_…) was made: rows from before then
    are from before modes; None when there is no such key yet (every row is)."""
    return db.session.scalar(
        select(func.min(ApiKey.created_at)).where(
            or_(*(ApiKey.prefix.startswith(p) for p in API_KEY_MODE_PREFIXES.values()))
        )
    )


def _still_test(model, made_at, before: datetime | None):
    condition = model.livemode.is_(False)
    return condition if before is None else condition & (made_at < before)


def _keeping_updated_at(model) -> dict:
    """A change of mode is no change of the row's story: updated_at (which reconciliation reads
    as "last touched") keeps its value instead of its onupdate."""
    column = getattr(model, "updated_at", None)
    return {"updated_at": column} if column is not None else {}


@modes.command("adopt-live")
@click.option("--yes", is_flag=True, help="Mark them without asking.")
def adopt_live(yes: bool) -> None:
    """Mark the API keys, payments, subscriptions, PSP events and Idempotency-Keys from before
    modes live (for a deployment that ran on a live Stripe key); prints the counts."""
    if not current_app.config.get("STRIPE_LIVE_SECRET_KEY"):
        raise click.ClickException(
            "STRIPE_LIVE_SECRET_KEY is not set: set it (and STRIPE_LIVE_WEBHOOK_SECRET) first, "
            "or these payments could not be served once they are live"
        )
    before = modes_began()
    counts = {
        what: db.session.scalar(
            select(func.count()).select_from(model).where(_still_test(model, made_at, before))
        )
        for what, model, made_at in ADOPTED
    }
    db.session.rollback()
    summary = ", ".join(f"{count} {what}" for what, count in counts.items())
    if not any(counts.values()):
        click.echo("Nothing to mark: every row from before modes is live already.")
        return
    click.echo(f"From before modes, still test: {summary}.")
    if not yes:
        click.confirm("Mark them live (real money, served with the live Stripe key)?", abort=True)
    for what, model, made_at in ADOPTED:
        result = db.session.execute(
            update(model)
            .where(_still_test(model, made_at, before))
            .values(livemode=True, **_keeping_updated_at(model))
            .execution_options(synchronize_session=False)
        )
        counts[what] = cast(CursorResult, result).rowcount
    db.session.commit()
    click.echo("Marked live: " + ", ".join(f"{count} {what}" for what, count in counts.items()))


def register(app: Flask) -> None:
    app.cli.add_command(modes)
