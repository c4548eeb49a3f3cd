"""Helpers for tests that take a payment all the way through the live app: Stripe's webhooks
from the emulator to it, and the emulator's test cards."""

from __future__ import annotations

import requests

from tests.support.psp import CARD

STRIPE_WEBHOOK_SECRET = "whsec_test_paybridge"  # what tests/conftest.py sets
SUCCESS_CARD = CARD
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
