"""The Stripe emulator's side of a benchmark: its lists, paying its checkout sessions, and signing
events as Stripe signs them.

Shared by the load run (scenarios, audit; bench/.venv) and the CPU probe (the app's venv), so it
uses `requests` only, never aiohttp.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator

import requests

CARD = "4242424242424242"


def list_all(base_url: str, api_key: str, path: str, **params) -> Iterator[dict]:
    """Every object of a Stripe list (GET /v1/<path>), fetching page after page."""
    after = None
    while True:
        query = {"limit": 100, **params, **({"starting_after": after} if after else {})}
        resp = requests.get(
            f"{base_url}/v1/{path}",
            params=query,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=60,
        )
        resp.raise_for_status()
        page = resp.json()
        yield from page["data"]
        if not page["has_more"] or not page["data"]:
            return
        after = page["data"][-1]["id"]


def completed_events(
    base_url: str, api_key: str, since: int, session_ids: set[str]
) -> dict[str, dict]:
    """The checkout.session.completed events of these sessions (created since `since`), by
    session id, as the emulator sends them."""
    events = list_all(
        base_url, api_key, "events", type="checkout.session.completed", **{"created[gte]": since}
    )
    return {
        ev["data"]["object"]["id"]: ev for ev in events if ev["data"]["object"]["id"] in session_ids
    }


def charge_events(base_url: str, api_key: str, since: int, intent_ids: set[str]) -> dict[str, dict]:
    """The charge.succeeded events of these payment intents (created since `since`), by intent
    id, as the emulator sends them."""
    events = list_all(
        base_url, api_key, "events", type="charge.succeeded", **{"created[gte]": since}
    )
    return {
        ev["data"]["object"]["payment_intent"]: ev
        for ev in events
        if ev["data"]["object"]["payment_intent"] in intent_ids
    }


def pay_sessions(base_url: str, session_ids: list[str], batch: int = 1000) -> int:
    """Pay checkout sessions with the test card, a thousand per call (the emulator's pay-many
    control route: one connection per session was most of the ~2 ms a session cost, 38 s for
    the webhooks' 17,200); returns how many it did not complete."""
    failures = 0
    with requests.Session() as http:
        for i in range(0, len(session_ids), batch):
            resp = http.post(
                f"{base_url}/_emulator/checkout/sessions/pay",
                json={"ids": session_ids[i : i + batch], "card": CARD},
                timeout=120,
            )
            resp.raise_for_status()
            failures += sum(1 for r in resp.json()["results"] if not r["completed"])
    return failures


def stripe_signature(body: bytes, secret: str, t: int | None = None) -> str:
    """The Stripe-Signature header of `body`: t=<ts>,v1=HMAC-SHA256(secret, "<ts>.<body>")."""
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"
