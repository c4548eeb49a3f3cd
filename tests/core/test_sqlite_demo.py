"""The embedded SQLite database of the demo serialises status changes like MariaDB's row lock."""

from __future__ import annotations

import threading
import time

from app.models import PaymentStatus, StatusSource
from tests.support.factories import add_merchant, record_payment


def initiated_payment(app, reference: str, notify_url: str | None = None) -> int:
    """A demo merchant's payment registered at the PSP (INITIATED), committed; its id."""
    from app.extensions import db

    with app.app_context():
        merchant, _ = add_merchant("Demo", notify_url)
        payment = record_payment(merchant.id, merchant_reference=reference, amount=1000)
        db.session.commit()
        return payment.id


def test_two_threads_finishing_one_payment_make_one_final_status(sqlite_app):
    """A webhook's SUCCESS and a merchant's expire at the same moment: one wins, never both."""
    from app.extensions import db
    from app.models import Payment, PaymentStatusChange
    from app.payments.state import IllegalTransition, lock_payment, transition

    payment_id = initiated_payment(sqlite_app, "race-1")

    both_locked = threading.Barrier(2, timeout=2)
    outcomes: dict[str, str] = {}

    def finish(target: PaymentStatus) -> None:
        with sqlite_app.app_context():
            try:
                locked = lock_payment(payment_id)
                try:
                    both_locked.wait()  # without a real lock both would read INITIATED here
                except threading.BrokenBarrierError:
                    pass  # the other thread is waiting for our lock: as it should
                time.sleep(0.2)
                transition(locked, target, source=StatusSource.WEBHOOK, reason="race")
                db.session.commit()
                outcomes[target.value] = "applied"
            except IllegalTransition as exc:
                db.session.rollback()
                outcomes[target.value] = exc.code

    threads = [threading.Thread(target=finish, args=(t,)) for t in (PaymentStatus.SUCCESS,
               PaymentStatus.FAILED)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)

    assert sorted(outcomes.values()) == ["PAYMENT_ALREADY_FINAL", "applied"], outcomes
    with sqlite_app.app_context():
        final = db.session.get(Payment, payment_id).status
        finals = db.session.scalars(
            db.select(PaymentStatusChange.to_status).where(
                PaymentStatusChange.payment_id == payment_id,
                PaymentStatusChange.to_status.in_(["SUCCESS", "FAILED"]),
            )
        ).all()
    assert finals == [final]
    assert outcomes[final] == "applied"


def test_the_notification_pump_delivers_on_the_demo_database(sqlite_app, receiver):
    """The pump's claim (no SKIP LOCKED, no READ COMMITTED on SQLite) and its outcome record."""
    from app.extensions import db
    from app.models import Notification
    from app.notifications.pump import NotificationPump
    from app.payments.state import lock_payment, transition

    payment_id = initiated_payment(sqlite_app, "notify-1", notify_url=receiver.url)
    with sqlite_app.app_context():
        transition(lock_payment(payment_id), PaymentStatus.SUCCESS, source=StatusSource.WEBHOOK)
        db.session.commit()
    pump = NotificationPump(sqlite_app, concurrency=2)
    pump.start()
    try:
        [request] = receiver.wait_for(1)
    finally:
        pump.stop(timeout=10)
    with sqlite_app.app_context():
        [notification] = db.session.scalars(
            db.select(Notification).where(Notification.event_type == "payment.succeeded")
        ).all()
        assert (notification.status, notification.attempt_count) == ("delivered", 1)
        assert request.headers["webhook-id"] == notification.public_id


def test_the_demo_runs_in_test_mode(app, tmp_path, monkeypatch, restore_api):
    """scripts/demo.sh's steps on the demo's own settings (development: Stripe's test mode
    only): the shop's merchant gets a test key, its dashboard opens on test data with the
    banner, its transactions list answers, and a live key is refused, saying why."""
    import json

    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db
    from tests.support.pages import csrf_from, login, token_for

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    demo = create_app("development")
    try:
        assert demo.config["STRIPE_LIVE_SECRET_KEY"] is None
        with demo.app_context():
            upgrade()
        cli = demo.test_cli_runner()
        created = cli.invoke(args=["merchants", "create", "PayBridge Demo Shop", "--json"])
        merchant = json.loads(created.output)
        assert merchant["api_key"].startswith("pbk_test_")
        monkeypatch.setenv("PAYBRIDGE_USER_PASSWORD", "demo-password")
        made = cli.invoke(
            args=[
                "users",
                "create",
                "merchant@example.com",
                "--merchant-id",
                merchant["merchant_id"],
            ]
        )
        assert made.exit_code == 0, made.output

        browser = demo.test_client()
        assert login(browser, "merchant@example.com", "demo-password").status_code == 302
        assert "Viewing test data." in browser.get("/dashboard/").get_data(as_text=True)
        # The lists on SQLite: no MariaDB-only clause or statement (the list's read bound).
        for path in ("/dashboard/payments", "/dashboard/payments?status=FAILED&method_type=card"):
            listed = browser.get(path)
            assert listed.status_code == 200, path
            assert "No payments match" in listed.get_data(as_text=True), path
        token = token_for(browser, "/dashboard/api-keys")
        refused = browser.post(
            "/dashboard/api-keys", data={"name": "live", "mode": "live", "csrf_token": token}
        )
        assert refused.status_code == 400
        assert "does not run live mode" in refused.get_data(as_text=True)
        assert csrf_from(refused.get_data(as_text=True))  # the form is shown again
    finally:
        with demo.app_context():
            db.engine.dispose()
