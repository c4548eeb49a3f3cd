"""Helpers for tests that take a payment all the way through the live app: Stripe's webhooks
from the emulator to it, and the emulator's test cards."""

from __future__ import annotations

import requests

from app.config import EMULATOR_LIVE_WEBHOOK_SECRET
from tests.support.psp import CARD

STRIPE_WEBHOOK_SECRET = "whsec_test_paybridge"  # what tests/conftest.py sets
SUCCESS_CARD = CARD
DECLINED_CARD = "4000000000000002"


def ensure_stripe_webhook_endpoint(emulator, live_server) -> None:
    """The emulator sends each mode's events to this run's live server, signed with that
    mode's secret (once, whatever reset it)."""
    url = live_server.url + "/webhooks/stripe"
    for api_key, secret, livemode in (
        (emulator.api_key, STRIPE_WEBHOOK_SECRET, False),
        (emulator.live_api_key, EMULATOR_LIVE_WEBHOOK_SECRET, True),
    ):
        listing = requests.get(
            f"{emulator.url}/v1/webhook_endpoints",
            params={"limit": 100},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=10,
        )
        listing.raise_for_status()
        if not any(e["url"] == url for e in listing.json()["data"]):
            emulator.control(
                "POST", "webhook_endpoints", {"url": url, "secret": secret, "livemode": livemode}
            )
