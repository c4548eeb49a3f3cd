"""The demo shop catches up after a stop: what PayBridge notified while it was down is pulled
through the Events API on the next start and applied once, before any delivery gets through."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.models import Notification, Payment
from demo_shop import create_app
from demo_shop.catalogue import products_on_sale
from demo_shop.catch_up import catch_up
from demo_shop.extensions import db as shop_db
from demo_shop.models import EventPosition, ReceivedNotification
from tests.shop.support import Shopper, deliver_until_order_final, running_shop
from tests.support.api import auth_headers
from tests.support.delivery import deliver_due_notifications
from tests.support.factories import FINAL_NEWS
from tests.support.payflow import SUCCESS_CARD, ensure_stripe_webhook_endpoint
from tests.support.waiting import wait_until


def payment_of(app, reference: str) -> Payment:
    with app.app_context():
        payment = db.session.scalars(
            select(Payment).where(Payment.merchant_reference == reference)
        ).one()
        db.session.expunge(payment)
        db.session.remove()
        return payment


def notifications_of(app, payment_id: int) -> list[tuple[str, str]]:
    with app.app_context():
        rows = db.session.execute(
            select(Notification.event_type, Notification.status)
            .where(Notification.payment_id == payment_id, FINAL_NEWS)
            .order_by(Notification.id)
        ).all()
        db.session.remove()
        return [tuple(row) for row in rows]


def shop_rows(shop_app, model) -> list:
    with shop_app.app_context():
        rows = shop_db.session.scalars(select(model).order_by(model.id)).all()
        shop_db.session.expunge_all()
        shop_db.session.remove()
        return rows


@pytest.mark.slow
def test_a_shop_started_again_pulls_what_it_missed_while_stopped_and_applies_it_once(
    app, live_server, emulator, tmp_path
):
    ensure_stripe_webhook_endpoint(emulator, live_server)
    with running_shop(app, tmp_path) as shop:
        shopper = Shopper(shop.app.test_client())
        assert shopper.signup("ada@example.com").status_code == 303
        with shop.app.app_context():
            product = products_on_sale()[0].id
        # Order A is paid and its notification delivered while the shop runs.
        shopper.buy(product)
        [first] = shop.orders()
        paid = payment_of(app, first.reference)
        emulator.control(
            "POST", f"checkout/sessions/{paid.psp_session_id}/pay", {"card": SUCCESS_CARD}
        )
        assert deliver_until_order_final(app, shop, first.id) == "PAID"
        # Order B goes to the hosted page; the shop stops before the shopper pays.
        shopper.buy(product)
        second = shop.orders()[1]
        shop_url, api_key = shop.url, shop.api_key
    position = shop_rows(shop.app, EventPosition)[0]
    assert position.event_id is not None  # the delivered notification's

    # While the shop is stopped: B is paid, and A partly refunded through the API.
    pending = payment_of(app, second.reference)
    emulator.control(
        "POST", f"checkout/sessions/{pending.psp_session_id}/pay", {"card": SUCCESS_CARD}
    )
    wait_until(
        lambda: payment_of(app, second.reference).status == "SUCCESS",
        what="order B's payment to succeed",
        timeout=20,
    )
    refund = requests.post(
        f"{live_server.url}/api/v1/payments/{paid.public_id}/refunds",
        json={"amount": 500},
        headers=auth_headers(api_key),
        timeout=30,
    )
    assert refund.status_code == 201, refund.text
    assert deliver_due_notifications(app) >= 2  # both tried, the shop is not there
    assert notifications_of(app, pending.id) == [("payment.succeeded", "pending")]

    config = {
        "PAYBRIDGE_URL": app.config["PUBLIC_BASE_URL"],
        "PUBLIC_URL": shop_url,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'demo_shop.sqlite3'}",
    }
    started_again = create_app({**config, "CATCH_UP_ON_START": True}, instance_path=str(tmp_path))
    try:

        def order_b_paid():
            with started_again.app_context():
                order = shop_db.session.get(type(second), second.id)
                refunds = shop_db.session.get(type(first), first.id).refunds
                done = order.status == "PAID" and len(refunds) == 1
                shop_db.session.remove()
                return done

        wait_until(order_b_paid, what="the shop to catch up", timeout=20)
        received = [
            (r.event_type, r.outcome) for r in shop_rows(started_again, ReceivedNotification)
        ]
        assert received == [
            ("payment.succeeded", "applied"),  # A, delivered before the stop
            # Pulled: the payments' payment.initiated events (which their endpoint from the
            # notify_url does not receive) say nothing newer than the shop knows.
            ("payment.initiated", "stale"),
            ("payment.initiated", "stale"),
            ("payment.succeeded", "applied"),  # B, pulled
            ("refund.succeeded", "applied"),  # A's refund, pulled
        ]
        # Pulled, not delivered: PayBridge is still retrying B's notification.
        assert notifications_of(app, pending.id) == [("payment.succeeded", "pending")]

        # Starting once more changes nothing: every event is one the shop has.
        with started_again.app_context():
            again = catch_up(started_again.extensions["paybridge"])
            shop_db.session.remove()
        assert again.read == 5 and again.applied == 0
        assert len(shop_rows(started_again, ReceivedNotification)) == 5
    finally:
        with started_again.app_context():
            shop_db.session.remove()
            shop_db.engine.dispose()


def test_the_first_start_remembers_now_and_pulls_nothing(app, live_server, emulator, tmp_path):
    with running_shop(app, tmp_path) as shop:
        with shop.app.app_context():
            report = catch_up(shop.app.extensions["paybridge"])
            position = shop_db.session.get(EventPosition, 1)
            assert position is not None and position.caught_up_at is not None
            shop_db.session.remove()
    assert report.first_start and report.read == 0
