"""Helpers for the shop's tests (service and browser): seeding, signing, waiting, delivering."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

import requests
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

STRIPE_WEBHOOK_SECRET = "whsec_test_paybridge"  # what tests/conftest.py sets
SUCCESS_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"


def seed_shop(app, base_url: str):
    """Run the demo seed with notify_url pointing at `base_url`; returns the SeedReport."""
    from app.extensions import db
    from app.shop.seed import seed_demo

    with app.app_context():
        report = seed_demo(base_url)
        db.session.commit()
    return report


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


def deliver_until_order_final(app, order_id: int, *, timeout: float = 30.0) -> str:
    """Run notification delivery until the order is PAID or FAILED; its status."""

    def final_status():
        deliver_due_notifications(app)
        status = order_status(app, order_id)
        return status if status in ("PAID", "FAILED") else None

    return wait_for(final_status, timeout=timeout, interval=0.3, what=f"order {order_id} final")


def order_status(app, order_id: int) -> str | None:
    from app.extensions import db
    from app.shop.models import Order

    with app.app_context():
        order = db.session.get(Order, order_id)
        status = order.status if order else None
        db.session.remove()
        return status


def count(app, model) -> int:
    from app.extensions import db

    with app.app_context():
        n = db.session.execute(select(func.count()).select_from(model)).scalar_one()
        db.session.remove()
        return n


def sign(secret: str, msg_id: str, payload: dict, at: datetime | None = None):
    """A Standard Webhooks request as PayBridge sends it: (body, headers)."""
    body = json.dumps(payload)
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, at, body)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return body, headers


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "page has no csrf token"
    return match.group(1)


def form_value(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" type="hidden" value="([^"]*)"', html) or re.search(
        rf'id="{name}" name="{name}" type="hidden" value="([^"]*)"', html
    )
    assert match, f"page has no hidden field {name}"
    return match.group(1)


class Shopper:
    """A shopper driving the shop through Flask's test client, forms and CSRF tokens included."""

    def __init__(self, client) -> None:
        self.client = client

    def token(self, path: str = "/") -> str:
        page = self.client.get(path)
        assert page.status_code == 200, page.status_code
        return csrf_token(page.get_data(as_text=True))

    def signup(self, email: str, password: str = "correct-horse-9", name: str = "Ada Shopper"):
        return self.client.post(
            "/account/signup",
            data={
                "csrf_token": self.token("/account/signup"),
                "name": name,
                "email": email,
                "password": password,
                "confirm": password,
            },
        )

    def login(self, email: str, password: str, next_url: str = ""):
        return self.client.post(
            "/account/login",
            data={
                "csrf_token": self.token("/account/login"),
                "email": email,
                "password": password,
                "next": next_url,
            },
        )

    def add(self, product_id: int, quantity: int = 1):
        return self.client.post(
            "/cart/add",
            data={"csrf_token": self.token(), "product_id": product_id, "quantity": quantity},
        )

    def checkout_form(self) -> tuple[str, str]:
        """(csrf token, checkout token) from the checkout page."""
        page = self.client.get("/checkout")
        assert page.status_code == 200, page.status_code
        html = page.get_data(as_text=True)
        return csrf_token(html), form_value(html, "token")

    def place_order(self, csrf: str, token: str):
        return self.client.post("/checkout", data={"csrf_token": csrf, "token": token})

    def post_action(self, path: str):
        return self.client.post(path, data={"csrf_token": self.token()})
