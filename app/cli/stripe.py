"""`flask stripe setup|check`: Stripe's webhook endpoint and keys, for each configured mode."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup

from app.psp.base import PspError
from app.psp_events import setup as stripe_setup

stripe_cli = AppGroup("stripe", help="Stripe, set up and checked by PayBridge (each mode).")

MODES = {"test": False, "live": True}


def register(app: Flask) -> None:
    app.cli.add_command(stripe_cli)


def _modes(mode: str | None) -> list[bool] | None:
    return None if mode is None else [MODES[mode]]


mode_option = click.option(
    "--mode",
    type=click.Choice(sorted(MODES)),
    help="Only this mode (default: every mode whose key is set).",
)


@stripe_cli.command("setup")
@mode_option
@click.option(
    "--rotate",
    is_flag=True,
    help="Delete and recreate the mode's endpoint: a new signing secret (needs --mode).",
)
def setup_command(mode: str | None, rotate: bool) -> None:
    """Create or update the webhook endpoint at PUBLIC_BASE_URL/webhooks/stripe."""
    if rotate and mode is None:
        raise click.UsageError("--rotate recreates one mode's endpoint: say which with --mode")
    try:
        report = stripe_setup.set_up(_modes(mode), rotate=rotate)
    except PspError as exc:
        raise click.ClickException(
            f"Stripe failed mid-way ({exc}); run `flask stripe setup` again: it continues "
            "from what is there"
        ) from exc
    _require_modes(report)
    for mode_report in report.modes:
        name = stripe_setup.mode_name(mode_report.livemode)
        for change in mode_report.changes:
            click.echo(f"{name} mode: {change}")
        if not mode_report.changes and mode_report.endpoint is not None:
            click.echo(
                f"{name} mode: endpoint {mode_report.endpoint.id} is set up; nothing changed"
            )
        if mode_report.new_secret:
            setting = stripe_setup.secret_setting(mode_report.livemode)
            click.echo(
                f"{name} mode: its signing secret, shown this once (PayBridge keeps only a "
                f"fingerprint): set it in PayBridge's environment and restart —\n"
                f"{setting}={mode_report.new_secret}"
            )
    _print_problems(report)


@stripe_cli.command("check")
@mode_option
def check_command(mode: str | None) -> None:
    """Verify each mode's key, endpoint, events, API version and secret; exit 1 on a problem."""
    report = stripe_setup.check(_modes(mode))
    _require_modes(report)
    for mode_report in report.modes:
        endpoint = mode_report.endpoint
        if not mode_report.problems and endpoint is not None:
            name = stripe_setup.mode_name(mode_report.livemode)
            click.echo(f"{name} mode: ok (endpoint {endpoint.id})")
    _print_problems(report)


def _require_modes(report: stripe_setup.Report) -> None:
    if not report.modes:
        raise click.ClickException("that mode is not configured (its STRIPE_…_SECRET_KEY unset)")


def _print_problems(report: stripe_setup.Report) -> None:
    for problem in report.problems:
        click.echo(str(problem), err=True)
    if report.problems:
        sys.exit(1)
