"""The demo shop under test: its own app and server, connected to the live PayBridge the way
scripts/demo.sh connects it, plus a shopper that drives its pages (forms, CSRF and all)."""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from demo_shop import create_app
from demo_shop.extensions import db as shop_db
from demo_shop.models import Order, ReceivedNotification
from tests.support.delivery import deliver_due_notifications
from tests.support.live_server import LiveServer
from tests.support.waiting import wait_until


@dataclass
class RunningShop:
    """The shop's app on its own port; its two notification endpoints (orders: payment.*,
    refunds: refund.* and dispute.*) registered at PayBridge by its `init`."""

    app: object  # the demo_shop Flask app
    url: str
    merchant_id: int
    api_key: str
    signing_secret: str  # the orders endpoint's
    refunds_signing_secret: str

    @property
    def notify_url(self) -> str:
        """The orders endpoint's URL (payments)."""
        return f"{self.url}/notify/orders"

    @property
    def refunds_url(self) -> str:
        return f"{self.url}/notify/refunds"

    def order(self, order_id: int) -> Order:
        """The order as the shop's store has it now (detached, items, refunds and renewals
        loaded)."""
        with self.app.app_context():
            order = shop_db.session.get(Order, order_id)
            if order is not None:
                order.items, order.refunds, order.renewals  # noqa: B018  (load them now)
                shop_db.session.expunge(order)
            shop_db.session.remove()
            return order

    def orders(self) -> list[Order]:
        with self.app.app_context():
            ids = shop_db.session.scalars(select(Order.id).order_by(Order.id)).all()
        return [self.order(order_id) for order_id in ids]

    def count(self, model) -> int:
        with self.app.app_context():
            n = shop_db.session.scalar(select(func.count()).select_from(model))
            shop_db.session.remove()
            return n

    def received(self) -> list[tuple[str, str]]:
        """(event type, outcome) of every notification the shop verified, in arrival order."""
        with self.app.app_context():
            rows = shop_db.session.execute(
                select(ReceivedNotification.event_type, ReceivedNotification.outcome).order_by(
                    ReceivedNotification.id
                )
            ).all()
            shop_db.session.remove()
            return [tuple(row) for row in rows]


@contextmanager
def running_shop(paybridge_app, instance_path: Path, **settings):
    """A fresh shop store and server, connected to PayBridge as a new merchant via the
    operator CLI (`flask merchants create --json` into `python -m demo_shop init`, which creates
    the shop's two notification endpoints through the API)."""
    serving = {}
    server = LiveServer(lambda environ, start: serving["app"](environ, start)).start()
    shop_url = server.url
    created = paybridge_app.test_cli_runner().invoke(
        args=["merchants", "create", "PayBridge Demo Shop", "--json"],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    merchant = json.loads(created.output)
    config = {
        "PAYBRIDGE_URL": paybridge_app.config["PUBLIC_BASE_URL"],
        "PUBLIC_URL": shop_url,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance_path / 'demo_shop.sqlite3'}",
        **settings,
    }
    setup = create_app(config, instance_path=str(instance_path))
    init = setup.test_cli_runner().invoke(
        args=["init", "--paybridge-credentials", "-"], input=created.output
    )
    assert init.exit_code == 0, init.output
    stored = json.loads((instance_path / "demo_shop.json").read_text())
    _dispose(setup)
    shop_app = create_app(config, instance_path=str(instance_path))
    serving["app"] = shop_app
    try:
        yield RunningShop(
            app=shop_app,
            url=shop_url,
            merchant_id=merchant["merchant_id"],
            api_key=merchant["api_key"],
            signing_secret=stored["PAYBRIDGE_ORDERS_SIGNING_SECRET"],
            refunds_signing_secret=stored["PAYBRIDGE_REFUNDS_SIGNING_SECRET"],
        )
    finally:
        server.stop()
        _dispose(shop_app)


def _dispose(shop_app) -> None:
    with shop_app.app_context():
        shop_db.session.remove()
        shop_db.engine.dispose()


def deliver_until_order_final(paybridge_app, shop: RunningShop, order_id: int) -> str:
    """Run PayBridge's notification delivery until the shop's order is PAID or FAILED."""

    def final_status():
        deliver_due_notifications(paybridge_app)
        status = shop.order(order_id).status
        return status if status in ("PAID", "FAILED") else None

    return wait_until(final_status, timeout=30, interval=0.3, what=f"order {order_id} final")


def sign(secret: str, msg_id: str, payload: dict, at: datetime | None = None):
    """A Standard Webhooks request as PayBridge sends it: (body, headers)."""
    body = json.dumps(payload)
    at = at or datetime.now(UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
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

    def page(self, path: str) -> str:
        response = self.client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        return response.get_data(as_text=True)

    def token(self, path: str = "/") -> str:
        return csrf_token(self.page(path))

    def signup(self, email: str, password: str = "correct-horse-9", name: str = "Ada Shopper"):
        """Sign up, then log in as the shop asks (sign-up never logs in: it answers the same
        for a new and a taken address); the log-in's answer, or the refused sign-up's."""
        response = self.signup_only(email, password, name)
        if response.status_code != 303:
            return response
        return self.login(email, password)

    def signup_only(self, email: str, password: str = "correct-horse-9", name: str = "Ada Shopper"):
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
        html = self.page("/checkout")
        return csrf_token(html), form_value(html, "token")

    def place_order(self, csrf: str, token: str):
        return self.client.post("/checkout", data={"csrf_token": csrf, "token": token})

    def buy(self, product_id: int, quantity: int = 1):
        """Add one print and check out: the answer (a redirect to the hosted page, normally)."""
        self.add(product_id, quantity)
        return self.place_order(*self.checkout_form())

    def subscribe(self, slug: str = "print-club"):
        html = self.page(f"/subscribe/{slug}")
        return self.client.post(
            f"/subscribe/{slug}",
            data={"csrf_token": csrf_token(html), "token": form_value(html, "token")},
        )

    def post_action(self, path: str):
        return self.client.post(path, data={"csrf_token": self.token()})
