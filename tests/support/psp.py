"""The Stripe emulator as the tests drive and inspect it directly, not through PayBridge: its
control routes (a customer paying, its webhook deliveries) and its Stripe API (what the PSP
holds, or a change made behind PayBridge's back)."""

from __future__ import annotations

import requests
import stripe

from tests.support.waiting import wait_until

CARD = "4242424242424242"  # a card the emulator accepts


def pay_session(emulator, session_id: str, **method) -> dict:
    """The customer pays the checkout session at the emulator: with CARD unless `method` says
    otherwise (`card=...` or `iban=...`)."""
    return emulator.control("POST", f"checkout/sessions/{session_id}/pay", method or {"card": CARD})


def stripe_get(emulator, path: str, **params) -> dict:
    """GET the emulator's Stripe API (`/v1/...`) with its secret key; the JSON answer."""
    response = requests.get(
        emulator.url + path,
        params=params,
        headers={"Authorization": f"Bearer {emulator.api_key}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def stripe_post(emulator, path: str, data: dict) -> requests.Response:
    """POST to the emulator's Stripe API (`/v1/...`) with its secret key, as someone working at
    the PSP's side directly would; the response, whatever its status."""
    return requests.post(
        emulator.url + path,
        data=data,
        headers={"Authorization": f"Bearer {emulator.api_key}"},
        timeout=10,
    )


def stripe_client(emulator) -> stripe.StripeClient:
    """Stripe's own SDK pointed at the emulator."""
    return stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url})


def wait_for_deliveries(
    emulator, *, event_type: str | None = None, count: int | None = None, timeout: float = 10.0
) -> list[dict]:
    """Until the emulator's webhook deliveries (of `event_type`, if given) have ended, answered
    or given up: at least `count` of them, or with no count every one queued (and at least
    one). Returns the ended ones."""
    path = "deliveries" if event_type is None else f"deliveries?type={event_type}"

    def ended():
        deliveries = emulator.control("GET", path)["data"]
        done = [d for d in deliveries if d["status"] in ("succeeded", "failed")]
        if count is None:
            return done if deliveries and len(done) == len(deliveries) else None
        return done if len(done) >= count else None

    what = f"{count or 'all'} webhook deliveries" + (f" of {event_type}" if event_type else "")
    return wait_until(ended, what=what, timeout=timeout)


def checkout_sessions(emulator, client_reference_id: str | None = None) -> list[dict]:
    """Every checkout session the emulator holds, newest first; with `client_reference_id`,
    only that payment's (PayBridge sends its public id there)."""
    sessions: list[dict] = []
    page: dict = {"limit": 100}
    while True:
        listing = stripe_get(emulator, "/v1/checkout/sessions", **page)
        sessions += listing["data"]
        if not listing["has_more"]:
            break
        page["starting_after"] = listing["data"][-1]["id"]
    return [s for s in sessions if client_reference_id in (None, s["client_reference_id"])]
