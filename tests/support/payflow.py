"""Helpers for tests that take a payment all the way: Stripe's webhooks from the emulator to the
live app, the emulator's test cards, PayBridge's notification delivery, and waiting."""

from __future__ import annotations

import time

import requests

STRIPE_WEBHOOK_SECRET = "whsec_test_paybridge"  # what tests/conftest.py sets
SUCCESS_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"


def ensure_stripe_webhook_endpoint(emulator, live_server) -> None:
    """The emulator sends its events to this run's live server (once, whatever reset it)."""
    url = live_server.url + "/webhooks/stripe"
    listing = requests.get(
        f"{emulator.url}/v1/webhook_endpoints",
        params={"limit": 100},
        headers={"Authorization": f"Bearer {emulator.api_key}"},
        timeout=10,
    )
    listing.raise_for_status()
    if any(e["url"] == url for e in listing.json()["data"]):
        return
    emulator.control("POST", "webhook_endpoints", {"url": url, "secret": STRIPE_WEBHOOK_SECRET})


def wait_for(predicate, *, timeout: float = 20.0, interval: float = 0.1, what: str = "condition"):
    """The predicate's first truthy value, or fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def deliver_due_notifications(app) -> None:
    """Delivery cycles in this process, as the worker's pump runs them, until nothing is due."""
    from app.notifications.delivery import deliver_due

    with app.app_context():
        while deliver_due():
            pass
