"""The Alembic migrations build the whole schema and take it down again, on MariaDB and SQLite."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, inspect, text

from tests.conftest import TEST_DATABASE, drop_database, mysql_url, recreate_database

# A database of this run's own (named after PAYBRIDGE_TEST_DATABASE), so parallel runs never
# drop each other's.
MIGRATION_DB = f"{TEST_DATABASE}_migrations"


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _round_trip(url: str, monkeypatch) -> None:
    from flask_migrate import downgrade, upgrade

    from app import create_app
    from app.extensions import db

    monkeypatch.setenv("DATABASE_URL", url)
    fresh = create_app("testing")
    expected = {table.name for table in db.metadata.sorted_tables}
    with fresh.app_context():
        upgrade()
        assert _tables(url) == expected | {"alembic_version"}
        downgrade(revision="base")
        assert _tables(url) <= {"alembic_version"}
        upgrade()  # and up again: the downgrade left nothing behind that blocks it
        assert _tables(url) == expected | {"alembic_version"}
        db.engine.dispose()


def test_migrations_round_trip_on_a_fresh_mariadb_database(app, monkeypatch, restore_api):
    recreate_database(MIGRATION_DB)
    try:
        _round_trip(mysql_url(MIGRATION_DB), monkeypatch)
    finally:
        drop_database(MIGRATION_DB)


def test_migrations_round_trip_on_sqlite(app, tmp_path, monkeypatch, restore_api):
    _round_trip(f"sqlite:///{tmp_path / 'paybridge.sqlite3'}", monkeypatch)


def _columns(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {column["name"] for column in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def _sqlite_app(tmp_path, monkeypatch):
    """An app on a fresh SQLite file, not migrated yet: (its URL, the app)."""
    from app import create_app

    url = f"sqlite:///{tmp_path / 'paybridge.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    return url, create_app("testing")


def test_the_reconciliation_watermark_migration_keeps_the_runs(
    app, tmp_path, monkeypatch, restore_api
):
    """0006 adds the wide pass's watermark to the runs already recorded (NULL: the next run
    lists the whole window, as before) and takes it away again without losing them."""
    from flask_migrate import downgrade, upgrade

    from app.extensions import db

    url, fresh = _sqlite_app(tmp_path, monkeypatch)
    with fresh.app_context():
        upgrade(revision="0005_refunds")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    'INSERT INTO reconciliation_runs (started_at, status, "trigger", dry_run,'
                    " checked, corrected, still_open, errors)"
                    " VALUES ('2026-12-01 10:00:00', 'succeeded', 'schedule', 0, 3, 1, 0, 0)"
                )
            )
        upgrade()
        assert "sessions_compared_until" in _columns(url, "reconciliation_runs")
        with db.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT checked, sessions_compared_until FROM reconciliation_runs")
            ).all()
        assert [tuple(r) for r in rows] == [(3, None)]
        downgrade(revision="0005_refunds")
        assert "sessions_compared_until" not in _columns(url, "reconciliation_runs")
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT checked FROM reconciliation_runs")).all() == [(3,)]
        db.engine.dispose()


def test_the_notification_pump_migration_leaves_no_pending_row_behind(
    app, tmp_path, monkeypatch, restore_api
):
    """0007 drops enqueued_at; a pending row the old sweeper would have sent for want of a
    next_attempt_at is made due, so the pump claims it; final rows keep theirs empty."""
    from flask_migrate import downgrade, upgrade

    from app.extensions import db
    from app.models import utcnow

    url, fresh = _sqlite_app(tmp_path, monkeypatch)
    with fresh.app_context():
        upgrade(revision="0006_recon_watermark")
        with db.engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            for public_id, status in (("msg_pending", "pending"), ("msg_done", "delivered")):
                conn.execute(
                    text(
                        "INSERT INTO notifications (public_id, merchant_id, event_type, payload,"
                        " status, attempt_count, next_attempt_at, enqueued_at, created_at,"
                        " updated_at) VALUES (:public_id, 1, 'payment.succeeded', '{}', :status,"
                        " 0, NULL, '2026-12-01 10:00:00', '2026-12-01 10:00:00',"
                        " '2026-12-01 10:00:00')"
                    ),
                    {"public_id": public_id, "status": status},
                )
        upgrade(revision="0007_drop_enqueued_at")  # 0022 fails what no endpoint receives
        assert "enqueued_at" not in _columns(url, "notifications")
        with db.engine.connect() as conn:
            rows = dict(
                conn.execute(text("SELECT public_id, next_attempt_at FROM notifications")).all()
            )
        assert rows["msg_done"] is None
        # SQLite hands the stored text back: due means not after now.
        assert rows["msg_pending"] is not None and rows["msg_pending"] <= str(utcnow())
        downgrade(revision="0006_recon_watermark")
        assert "enqueued_at" in _columns(url, "notifications")
        db.engine.dispose()


def test_models_and_migrations_agree(app):
    """Autogenerate finds nothing to do on the migrated test database."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_the_shop_tables_are_not_dropped_on_mysql_while_they_hold_rows(
    app, monkeypatch, restore_api, caplog
):
    """0008 drops the old in-app shop's tables; a deployment's rows in them stop it until the
    operator says they were exported."""
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db

    url = mysql_url(MIGRATION_DB)
    recreate_database(MIGRATION_DB)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("PAYBRIDGE_DROP_SHOP_TABLES", raising=False)
    try:
        fresh = create_app("testing")
        with fresh.app_context():
            upgrade(revision="0007_drop_enqueued_at")
            with db.engine.begin() as conn:
                conn.execute(text("INSERT INTO shop_settings (`key`, value) VALUES ('k', 'v')"))
            with pytest.raises(SystemExit):  # Flask-Migrate logs the error and exits 1
                upgrade()
            assert "still hold rows (shop_settings)" in caplog.text
            assert "PAYBRIDGE_DROP_SHOP_TABLES=1" in caplog.text
            assert "shop_settings" in _tables(url)  # nothing dropped

            monkeypatch.setenv("PAYBRIDGE_DROP_SHOP_TABLES", "1")
            upgrade()
            assert not {t for t in _tables(url) if t.startswith("shop_")}
            db.engine.dispose()
    finally:
        drop_database(MIGRATION_DB)


def _pre_modes_database(tmp_path, monkeypatch):
    """A SQLite database at 0011 (before modes) holding a merchant's API key."""
    from flask_migrate import upgrade

    from app.extensions import db

    url, fresh = _sqlite_app(tmp_path, monkeypatch)
    with fresh.app_context():
        upgrade(revision="0011_dashboard_sessions")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO merchants (id, name, signing_secret, created_at)"
                    " VALUES (1, 'Old shop', 'whsec_x', '2026-12-01 10:00:00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO api_keys (merchant_id, name, prefix, key_hash, created_at)"
                    " VALUES (1, 'default', 'pbk_abcdefgh', :hash, '2026-12-01 10:00:00')"
                ),
                {"hash": "a" * 64},
            )
            conn.execute(
                text(
                    "INSERT INTO idempotency_keys (merchant_id, idempotency_key, method, path,"
                    " request_fingerprint, state, created_at, updated_at) VALUES (1, 'order-1',"
                    " 'POST', '/api/v1/payments', :fp, 'completed', '2026-12-01 10:00:00',"
                    " '2026-12-01 10:00:00')"
                ),
                {"fp": "b" * 64},
            )
    return url, fresh


def _key_modes(fresh) -> list:
    """The modes of the API key and of the Idempotency-Key from before modes."""
    from app.extensions import db

    with db.engine.connect() as conn:
        return [
            conn.execute(text(f"SELECT livemode FROM {table}")).scalar_one()
            for table in ("api_keys", "idempotency_keys")
        ]


def test_rows_from_before_modes_take_the_one_mode_configured(
    app, tmp_path, monkeypatch, restore_api
):
    """A deployment that ran on sk_live_… and renamed its key to STRIPE_LIVE_SECRET_KEY: its
    old API keys (and payments, events) are live, not silently test."""
    from flask_migrate import upgrade

    monkeypatch.delenv("PAYBRIDGE_PRE_MODES_LIVEMODE", raising=False)
    url, fresh = _pre_modes_database(tmp_path, monkeypatch)
    fresh.config["STRIPE_TEST_SECRET_KEY"] = None  # only live mode, as the old key was
    with fresh.app_context():
        upgrade()
        assert _key_modes(fresh) == [1, 1]  # a retry after the upgrade still replays


def test_with_both_modes_configured_the_migration_asks_which_mode_old_rows_are(
    app, tmp_path, monkeypatch, restore_api, caplog
):
    from flask_migrate import upgrade

    monkeypatch.delenv("PAYBRIDGE_PRE_MODES_LIVEMODE", raising=False)
    url, fresh = _pre_modes_database(tmp_path, monkeypatch)  # the suite configures both
    with fresh.app_context():
        with pytest.raises(SystemExit):  # Flask-Migrate logs the error and exits 1
            upgrade()
        assert "PAYBRIDGE_PRE_MODES_LIVEMODE=live" in caplog.text
        assert "livemode" not in _columns(url, "api_keys")  # nothing half done

        monkeypatch.setenv("PAYBRIDGE_PRE_MODES_LIVEMODE", "test")
        upgrade()
        assert _key_modes(fresh) == [0, 0]


def test_the_refund_indexes_migration_gives_existing_rows_their_refund_state_and_mode(
    app, tmp_path, monkeypatch, restore_api
):
    """0017 derives each payment's refund state from its refunded_amount and copies each
    refund's payment's mode onto it, so the rows from before are listed and filtered too."""
    from flask_migrate import downgrade, upgrade

    from app.extensions import db

    url, fresh = _sqlite_app(tmp_path, monkeypatch)
    with fresh.app_context():
        upgrade(revision="0015_mode_indexes")
        with db.engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            for pid, refunded, livemode in ((1, 0, 0), (2, 500, 1), (3, 2000, 0)):
                conn.execute(
                    text(
                        "INSERT INTO payments (id, public_id, merchant_id, merchant_reference,"
                        " amount, currency, payment_type, success_url, cancel_url, metadata,"
                        " status, status_version, psp, refunded_amount, livemode, created_at,"
                        " updated_at) VALUES (:id, :public_id, 1, :public_id, 2000, 'EUR',"
                        " 'SALE', 'https://s.example/ok', 'https://s.example/no', '{}',"
                        " 'SUCCESS', 3, 'stripe', :refunded, :livemode, '2026-12-01 10:00:00',"
                        " '2026-12-01 10:00:00')"
                    ),
                    {
                        "id": pid,
                        "public_id": f"pay_{pid}",
                        "refunded": refunded,
                        "livemode": livemode,
                    },
                )
            conn.execute(
                text(
                    "INSERT INTO refunds (public_id, payment_id, merchant_id, amount, currency,"
                    " status, source, psp, psp_attempts, created_at, updated_at) VALUES"
                    " ('re_1', 2, 1, 500, 'EUR', 'succeeded', 'api', 'stripe', 1,"
                    " '2026-12-01 10:00:00', '2026-12-01 10:00:00')"
                )
            )
        upgrade()
        with db.engine.connect() as conn:
            states = dict(conn.execute(text("SELECT public_id, refund_state FROM payments")).all())
            modes = conn.execute(text("SELECT public_id, livemode FROM refunds")).all()
        assert states == {"pay_1": None, "pay_2": "partial", "pay_3": "full"}
        assert [tuple(m) for m in modes] == [("re_1", 1)]
        downgrade(revision="0015_mode_indexes")
        assert "refund_state" not in _columns(url, "payments")
        assert "livemode" not in _columns(url, "refunds")
        db.engine.dispose()


def test_the_notification_events_migration_gives_each_notification_its_mode(
    app, tmp_path, monkeypatch, restore_api
):
    """0021 copies each notification's payment's mode onto it; one without a payment takes its
    payload's `livemode`, and with neither it is test (never read by a live key as real money)."""
    from flask_migrate import downgrade, upgrade

    from app.extensions import db

    url, fresh = _sqlite_app(tmp_path, monkeypatch)
    with fresh.app_context():
        upgrade(revision="0020_dispute_indexes")
        with db.engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            for pid, livemode in ((1, 1), (2, 0)):
                conn.execute(
                    text(
                        "INSERT INTO payments (id, public_id, merchant_id, merchant_reference,"
                        " amount, currency, payment_type, success_url, cancel_url, metadata,"
                        " status, status_version, psp, refunded_amount, livemode, created_at,"
                        " updated_at) VALUES (:id, :public_id, 1, :public_id, 2000, 'EUR',"
                        " 'SALE', 'https://s.example/ok', 'https://s.example/no', '{}',"
                        " 'SUCCESS', 3, 'stripe', 0, :livemode, '2026-12-01 10:00:00',"
                        " '2026-12-01 10:00:00')"
                    ),
                    {"id": pid, "public_id": f"pay_{pid}", "livemode": livemode},
                )
            # The payload says test for msg_live: the payment (its mode's source of truth) wins.
            for public_id, payment_id, payload in (
                ("msg_live", 1, '{"livemode": false}'),
                ("msg_test", 2, "{}"),
                ("msg_orphan_live", None, '{"livemode": true}'),
                ("msg_orphan_unknown", None, '{"type": "payment.succeeded"}'),
            ):
                conn.execute(
                    text(
                        "INSERT INTO notifications (public_id, merchant_id, payment_id,"
                        " event_type, payload, status, attempt_count, created_at, updated_at)"
                        " VALUES (:public_id, 1, :payment_id, 'payment.succeeded', :payload,"
                        " 'delivered', 1, '2026-12-01 10:00:00', '2026-12-01 10:00:00')"
                    ),
                    {"public_id": public_id, "payment_id": payment_id, "payload": payload},
                )
        upgrade()
        with db.engine.connect() as conn:
            modes = dict(conn.execute(text("SELECT public_id, livemode FROM notifications")).all())
        assert modes == {
            "msg_live": 1,
            "msg_test": 0,
            "msg_orphan_live": 1,
            "msg_orphan_unknown": 0,
        }
        downgrade(revision="0020_dispute_indexes")
        assert "livemode" not in _columns(url, "notifications")
        db.engine.dispose()


@pytest.mark.parametrize("database", ["mariadb", "sqlite"])
def test_the_list_search_migration_keeps_every_email_in_lower_case(
    app, tmp_path, monkeypatch, restore_api, database
):
    """0019 lowers the emails stored before it (on MariaDB too, whose collation calls 'Ann' and
    'ann' equal), so a customer is one address and a prefix search finds every payment."""
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db

    if database == "mariadb":
        recreate_database(MIGRATION_DB)
        url = mysql_url(MIGRATION_DB)
        monkeypatch.setenv("DATABASE_URL", url)
        fresh = create_app("testing")
    else:
        url, fresh = _sqlite_app(tmp_path, monkeypatch)
    emails = {1: "Ann.Lee@Example.COM", 2: "ann.lee@example.com", 3: None}
    try:
        with fresh.app_context():
            upgrade(revision="0018_attempts_methods")
            with db.engine.begin() as conn:
                if database == "mariadb":
                    conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
                else:
                    conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                for pid, email in emails.items():
                    conn.execute(
                        text(
                            "INSERT INTO payments (id, public_id, merchant_id, merchant_reference,"
                            " amount, currency, payment_type, success_url, cancel_url, metadata,"
                            " status, status_version, psp, refunded_amount, livemode,"
                            " customer_email, created_at, updated_at) VALUES (:id, :public_id,"
                            " 1, :public_id, 2000, 'EUR', 'SALE', 'https://s.example/ok',"
                            " 'https://s.example/no', '{}', 'SUCCESS', 3, 'stripe', 0, 0, :email,"
                            " '2026-12-01 10:00:00', '2026-12-01 10:00:00')"
                        ),
                        {"id": pid, "public_id": f"pay_{pid}", "email": email},
                    )
            upgrade()
            with db.engine.connect() as conn:
                stored = dict(conn.execute(text("SELECT id, customer_email FROM payments")).all())
            assert stored == {1: "ann.lee@example.com", 2: "ann.lee@example.com", 3: None}
            db.engine.dispose()
    finally:
        if database == "mariadb":
            drop_database(MIGRATION_DB)


def test_the_attempts_migration_gives_failed_payments_their_reason(
    app, tmp_path, monkeypatch, restore_api
):
    """0018 backfills failure_reason from what each FAILED payment recorded: an expiry the
    merchant caused (API, dashboard) is canceled_by_merchant, any other expired, a failed
    renewal or a bank's decline declined, Stripe's own refusal or no code rejected_by_psp (as
    failure_reasons.default_for decides for new ones); payments not FAILED keep none."""
    from flask_migrate import downgrade, upgrade

    from app.extensions import db

    url, fresh = _sqlite_app(tmp_path, monkeypatch)
    rows = {
        # reference: (status, failure_code, source of the move to FAILED)
        "by-api": ("FAILED", "expired", "api"),
        "by-dashboard": ("FAILED", "expired", "dashboard"),
        "by-recon": ("FAILED", "expired", "recon"),
        "by-webhook": ("FAILED", "expired", "webhook"),
        "renewal": ("FAILED", "renewal_payment_failed", "webhook"),
        "async": ("FAILED", "generic_decline", "webhook"),
        "radar": ("FAILED", "fraudulent", "webhook"),
        "no-code": ("FAILED", None, "webhook"),
        "paid": ("SUCCESS", None, "webhook"),
    }
    with fresh.app_context():
        upgrade(revision="0017_refund_indexes")
        with db.engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            for n, (reference, (status, code, source)) in enumerate(rows.items(), start=1):
                conn.execute(
                    text(
                        "INSERT INTO payments (id, public_id, merchant_id, merchant_reference,"
                        " amount, currency, payment_type, success_url, cancel_url, metadata,"
                        " status, status_version, psp, livemode, failure_code, refunded_amount,"
                        " created_at, updated_at) VALUES (:id, :pid, 1, :ref, 100, 'EUR', 'SALE',"
                        " 'https://s', 'https://c', '{}', :status, 3, 'stripe', 0, :code, 0,"
                        " '2026-12-01 10:00:00', '2026-12-01 10:00:00')"
                    ),
                    {"id": n, "pid": f"pay_{n}", "ref": reference, "status": status, "code": code},
                )
                conn.execute(
                    text(
                        "INSERT INTO payment_status_history (payment_id, from_status, to_status,"
                        " status_version, source, created_at) VALUES (:id, 'INITIATED', :status,"
                        " 3, :source, '2026-12-01 10:00:00')"
                    ),
                    {"id": n, "status": status, "source": source},
                )
        upgrade()
        with db.engine.connect() as conn:
            reasons = dict(
                conn.execute(text("SELECT merchant_reference, failure_reason FROM payments")).all()
            )
        assert reasons == {
            "by-api": "canceled_by_merchant",
            "by-dashboard": "canceled_by_merchant",
            "by-recon": "expired",
            "by-webhook": "expired",
            "renewal": "declined",
            "async": "declined",
            "radar": "rejected_by_psp",
            "no-code": "rejected_by_psp",
            "paid": None,
        }
        downgrade(revision="0017_refund_indexes")
        assert "failure_reason" not in _columns(url, "payments")


def test_the_endpoints_migration_makes_each_notify_url_an_endpoint_per_mode_and_back(
    app, tmp_path, monkeypatch, restore_api
):
    """0022: a merchant's notify_url and secrets become a test and a live endpoint receiving
    exactly the types a notify_url received; each notification gets its delivery to the
    endpoint of its mode with its state, and its attempts follow; a merchant without a URL gets
    no endpoint and its pending notifications fail. Down again, the URL and secrets return."""
    from flask_migrate import downgrade, upgrade

    from app.extensions import db
    from app.notifications.event_types import LEGACY_EVENT_TYPES

    at = "'2026-12-01 10:00:00'"
    url, fresh = _sqlite_app(tmp_path, monkeypatch)
    with fresh.app_context():
        upgrade(revision="0021_notification_events")
        with db.engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.execute(
                text(
                    "INSERT INTO merchants (id, name, notify_url, signing_secret,"
                    " previous_signing_secret, secret_rotated_at, created_at) VALUES"
                    f" (1, 'With URL', 'https://a.example/hook', 'whsec_new', 'whsec_old', {at},"
                    f" {at}), (2, 'Without', NULL, 'whsec_unused', NULL, NULL, {at})"
                )
            )
            rows = [  # id, merchant, livemode, status, attempts
                (1, 1, 0, "delivered", 1),
                (2, 1, 1, "pending", 2),
                (3, 1, 0, "failed", 0),
                (4, 2, 0, "pending", 0),
            ]
            for nid, merchant_id, livemode, status, attempts in rows:
                conn.execute(
                    text(
                        "INSERT INTO notifications (id, public_id, merchant_id, payment_id,"
                        " livemode, event_type, payload, status, attempt_count,"
                        f" next_attempt_at, created_at, updated_at) VALUES (:id, :pid, :m, :id,"
                        f" :live, 'payment.succeeded', '{{}}', :status, :attempts, {at}, {at},"
                        f" {at})"
                    ),
                    {"id": nid, "pid": f"msg_{nid}", "m": merchant_id, "live": livemode,
                     "status": status, "attempts": attempts},
                )  # fmt: skip
                for _ in range(attempts):
                    conn.execute(
                        text(
                            "INSERT INTO notification_attempts (notification_id, attempted_at,"
                            f" status_code, duration_ms) VALUES (:id, {at}, 500, 5)"
                        ),
                        {"id": nid},
                    )
        upgrade()
        assert not {"notify_url", "signing_secret"} & _columns(url, "merchants")
        with db.engine.connect() as conn:
            endpoints = conn.execute(
                text(
                    "SELECT id, merchant_id, livemode, url, event_types, signing_secret,"
                    " previous_signing_secret, enabled FROM notification_endpoints ORDER BY id"
                )
            ).all()
            deliveries = conn.execute(
                text(
                    "SELECT d.notification_id, e.livemode, d.status, d.attempt_count"
                    " FROM notification_deliveries d JOIN notification_endpoints e"
                    " ON e.id = d.endpoint_id ORDER BY d.notification_id"
                )
            ).all()
            attempts = conn.execute(
                text(
                    "SELECT a.notification_id, d.notification_id FROM notification_attempts a"
                    " JOIN notification_deliveries d ON d.id = a.delivery_id"
                )
            ).all()
            orphan = conn.execute(text("SELECT status FROM notifications WHERE id = 4")).scalar()
        assert [(e.merchant_id, e.livemode, e.url) for e in endpoints] == [
            (1, 0, "https://a.example/hook"),
            (1, 1, "https://a.example/hook"),
        ]
        for e in endpoints:
            assert json.loads(e.event_types) == list(LEGACY_EVENT_TYPES)
            assert (e.signing_secret, e.previous_signing_secret, e.enabled) == (
                "whsec_new", "whsec_old", 1,
            )  # fmt: skip
        assert [tuple(d) for d in deliveries] == [
            (1, 0, "delivered", 1),
            (2, 1, "pending", 2),
            (3, 0, "failed", 0),
        ]
        assert len(attempts) == 3 and all(a == d for a, d in attempts)
        assert orphan == "failed"

        downgrade(revision="0021_notification_events")
        with db.engine.connect() as conn:
            merchants = conn.execute(
                text(
                    "SELECT id, notify_url, signing_secret, previous_signing_secret"
                    " FROM merchants ORDER BY id"
                )
            ).all()
        assert tuple(merchants[0]) == (1, "https://a.example/hook", "whsec_new", "whsec_old")
        assert merchants[1].notify_url is None and merchants[1].signing_secret.startswith("whsec_")
        assert "notification_endpoints" not in _tables(url)
        db.engine.dispose()


def test_the_rotation_expiry_migration_gives_every_previous_secret_an_end(
    app, tmp_path, monkeypatch, restore_api
):
    """0029: a previous secret from before it (which signed forever) signs for the grace from
    the upgrade on, then stops; an endpoint that never rotated has no expiry. Down again, the
    column goes and the secrets stay."""
    from flask_migrate import downgrade, upgrade

    from app.extensions import db

    url, fresh = _sqlite_app(tmp_path, monkeypatch)
    fresh.config["NOTIFY_SECRET_ROTATION_GRACE_SECONDS"] = 3600
    with fresh.app_context():
        upgrade(revision="0028_dispute_funds_indexes")
        with db.engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            for eid, previous in ((1, "whsec_old"), (2, None)):
                conn.execute(
                    text(
                        "INSERT INTO notification_endpoints (id, public_id, merchant_id,"
                        " livemode, url, event_types, signing_secret, previous_signing_secret,"
                        " enabled, created_at, updated_at) VALUES (:id, :pid, 1, 0,"
                        " 'https://a.example/hook', '[\"*\"]', 'whsec_new', :previous, 1,"
                        " '2026-12-01 10:00:00', '2026-12-01 10:00:00')"
                    ),
                    {"id": eid, "pid": f"we_{eid}", "previous": previous},
                )
        before = datetime.now(UTC).replace(tzinfo=None)
        upgrade(revision="0029_secret_rotation_expiry")
        with db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, previous_signing_secret, previous_signing_secret_expires_at"
                    " FROM notification_endpoints ORDER BY id"
                )
            ).all()
        rotated, never = rows
        expires = datetime.fromisoformat(str(rotated[2]))
        assert rotated[1] == "whsec_old"
        assert before + timedelta(seconds=3600) <= expires <= before + timedelta(seconds=3660)
        assert never[2] is None

        downgrade(revision="0028_dispute_funds_indexes")
        assert "previous_signing_secret_expires_at" not in _columns(url, "notification_endpoints")
        with db.engine.connect() as conn:
            kept = conn.execute(
                text("SELECT previous_signing_secret FROM notification_endpoints WHERE id = 1")
            ).scalar()
        assert kept == "whsec_old"


def test_the_dispute_state_and_rollup_attempts_migrations(app, tmp_path, monkeypatch, restore_api):
    """0030 gives each payment where its disputes stand: open while any is open, else lost if
    one was lost, else won (an inquiry closed counts as won); never disputed stays NULL. 0031
    drops the rollup made without attempts, for the worker to rebuild."""
    from flask_migrate import downgrade, upgrade

    from app.extensions import db

    url, fresh = _sqlite_app(tmp_path, monkeypatch)
    disputes = {2: ["needs_response"], 3: ["lost", "under_review"], 4: ["won", "lost"],
                5: ["warning_closed"]}  # fmt: skip
    with fresh.app_context():
        upgrade(revision="0029_secret_rotation_expiry")
        with db.engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            for pid in range(1, 6):
                conn.execute(
                    text(
                        "INSERT INTO payments (id, public_id, merchant_id, merchant_reference,"
                        " amount, currency, payment_type, success_url, cancel_url, metadata,"
                        " status, status_version, psp, refunded_amount, livemode, created_at,"
                        " updated_at) VALUES (:id, :public_id, 1, :public_id, 2000, 'EUR',"
                        " 'SALE', 'https://s.example/ok', 'https://s.example/no', '{}',"
                        " 'SUCCESS', 3, 'stripe', 0, 0, '2026-12-01 10:00:00',"
                        " '2026-12-01 10:00:00')"
                    ),
                    {"id": pid, "public_id": f"pay_{pid}"},
                )
            for pid, statuses in disputes.items():
                for n, status in enumerate(statuses):
                    conn.execute(
                        text(
                            "INSERT INTO disputes (public_id, payment_id, merchant_id, livemode,"
                            " psp, psp_dispute_id, amount, currency, status, has_evidence,"
                            " submission_count, created_at, updated_at) VALUES (:dsp, :pid, 1,"
                            " 0, 'stripe', :dsp, 2000, 'EUR', :status, 0, 0,"
                            " '2026-12-02 10:00:00', '2026-12-02 10:00:00')"
                        ),
                        {"dsp": f"dsp_{pid}_{n}", "pid": pid, "status": status},
                    )
            # A rollup of before 0031, which counted no attempts.
            conn.execute(
                text(
                    "INSERT INTO rollup_watermarks (name, updated_before, attempts_through)"
                    " VALUES ('payments', '2026-12-01 10:00:00', 0),"
                    " ('payment_methods', '2026-12-01 10:00:00', 0)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO payment_rollup (merchant_id, livemode, bucket_start, currency,"
                    " status, failure_reason, method_type, card_brand, attempted, payments,"
                    " amount) VALUES (1, 0, '2026-12-01 10:00:00', 'EUR', 'SUCCESS', '', '',"
                    " '', 1, 5, 10000)"
                )
            )
        upgrade(revision="0031_rollup_attempts")
        with db.engine.connect() as conn:
            states = dict(conn.execute(text("SELECT public_id, dispute_state FROM payments")).all())
            marks = conn.execute(text("SELECT name FROM rollup_watermarks")).scalars().all()
            rolled = conn.execute(text("SELECT COUNT(*) FROM payment_rollup")).scalar()
        assert states == {
            "pay_1": None, "pay_2": "open", "pay_3": "open", "pay_4": "lost", "pay_5": "won",
        }  # fmt: skip
        # 0031: the rollup is rebuilt with its attempts by the worker's next run (no watermark);
        # the payment-method lookup's watermark stays.
        assert (marks, rolled) == (["payment_methods"], 0)
        downgrade(revision="0029_secret_rotation_expiry")
        assert "dispute_state" not in _columns(url, "payments")
        db.engine.dispose()


def test_the_declined_method_migration_names_each_unpaid_payments_last_declined_card(
    app, tmp_path, monkeypatch, restore_api
):
    """0034 fills a payment's search columns from its latest declined attempt while it has no
    paid method; a paid payment, or one never tried with a known method, is left alone."""
    from flask_migrate import downgrade, upgrade

    from app.extensions import db

    url, fresh = _sqlite_app(tmp_path, monkeypatch)
    # payment id: (status, paid method as stored, [(attempted at, outcome, brand, last 4)])
    declined, paid = ("failed", "visa", "9995"), ("succeeded", "mastercard", "4444")
    payments = {
        1: ("FAILED", None, [("10:00", "failed", "visa", "0002"),
                             ("10:05", "failed", "amex", "8431")]),
        2: ("SUCCESS", ("card", "mastercard", "4444"), [("10:00", *declined), ("10:01", *paid)]),
        3: ("FAILED", None, []),
        4: ("INITIATED", None, [("10:00", *declined)]),
    }  # fmt: skip
    with fresh.app_context():
        upgrade(revision="0033_amount_brand_indexes")
        with db.engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            for pid, (status, paid, tries) in payments.items():
                conn.execute(
                    text(
                        "INSERT INTO payments (id, public_id, merchant_id, merchant_reference,"
                        " amount, currency, payment_type, success_url, cancel_url, metadata,"
                        " status, status_version, psp, refunded_amount, livemode, method_type,"
                        " card_brand, card_last4, payment_method, created_at, updated_at)"
                        " VALUES (:id, :public_id, 1, :public_id, 2000, 'EUR', 'SALE',"
                        " 'https://s.example/ok', 'https://s.example/no', '{}', :status, 3,"
                        " 'stripe', 0, 0, :type, :brand, :last4, :method,"
                        " '2026-12-01 10:00:00', '2026-12-01 10:00:00')"
                    ),
                    {
                        "id": pid,
                        "public_id": f"pay_{pid}",
                        "status": status,
                        "type": paid and paid[0],
                        "brand": paid and paid[1],
                        "last4": paid and paid[2],
                        "method": paid and '{"type": "card"}',
                    },
                )
                for at, outcome, brand, last4 in tries:
                    conn.execute(
                        text(
                            "INSERT INTO payment_attempts (payment_id, attempted_at, outcome,"
                            " method_type, card_brand, card_last4, created_at) VALUES (:pid,"
                            " :at, :outcome, 'card', :brand, :last4, :at)"
                        ),
                        {
                            "pid": pid,
                            "at": f"2026-12-01 {at}:00",
                            "outcome": outcome,
                            "brand": brand,
                            "last4": last4,
                        },
                    )
        upgrade(revision="0034_declined_method_search")
        with db.engine.connect() as conn:
            found = {
                row[0]: tuple(row[1:])
                for row in conn.execute(
                    text("SELECT id, method_type, card_brand, card_last4 FROM payments")
                )
            }
        assert found == {
            1: ("card", "amex", "8431"),  # the latest declined try
            2: ("card", "mastercard", "4444"),  # paid: its paid card, untouched
            3: (None, None, None),
            4: ("card", "visa", "9995"),
        }
        downgrade(revision="0033_amount_brand_indexes")
        db.engine.dispose()
