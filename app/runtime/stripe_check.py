"""Production's web processes check Stripe once each as they start (app/psp_events/setup.py),
in a thread of their own: a slow or unreachable Stripe never delays serving, and a wrong setup
is a loud ERROR line and a failing entry on /readyz, never a process that will not start (a
crash loop would take payments down with it). Until the check ends, /readyz lists Stripe as
pending (ok: not knowing yet is not a failure)."""

from __future__ import annotations

import threading

from flask import Flask

from app.psp_events.setup import startup_check, startup_check_started


def check_stripe_in_background(app: Flask) -> threading.Thread | None:
    """Start the check in production (other environments: `flask stripe check`)."""
    if app.config["PAYBRIDGE_ENV"] != "production":
        return None
    startup_check_started(app)
    thread = threading.Thread(
        target=startup_check, args=(app,), name="stripe-startup-check", daemon=True
    )
    thread.start()
    return thread
