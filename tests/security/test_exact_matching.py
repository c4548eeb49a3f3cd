"""Identifiers match exactly, on MariaDB as on SQLite: `a-1` and `A-1 ` are two merchant
references and two Idempotency-Keys, and a payment id with another case finds nothing.

MariaDB's default collation folds case and ignores trailing spaces (so does its `utf8mb4_bin`:
PAD SPACE); migration 0009 and the models' `ExactString` give every identifier column a binary
no-pad collation, whether the schema comes from the migrations or from `create_all`."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select, text

from app.extensions import db
from app.models import IdempotencyRecord, Payment, PspEvent
from tests.conftest import TEST_DATABASE, drop_database, mysql_url, recreate_database
from tests.support.api import auth_headers, create_body
from tests.support.factories import add_merchant, record_payment

# Every identifier column PayBridge looks rows up by (migration 0009's list).
IDENTIFIER_COLUMNS = {
    ("payments", "public_id"),
    ("payments", "merchant_reference"),
    ("payments", "psp_session_id"),
    ("payments", "psp_payment_intent_id"),
    ("payments", "psp_subscription_id"),
    ("payment_status_history", "psp_event_id"),
    ("idempotency_keys", "idempotency_key"),
    ("payment_conflicts", "psp_event_id"),
    ("payment_conflicts", "psp_session_id"),
    ("refunds", "public_id"),
    ("refunds", "psp_refund_id"),
    ("subscriptions", "public_id"),
    ("subscriptions", "psp_subscription_id"),
    ("subscription_charges", "psp_invoice_id"),
    ("subscription_charges", "attempt"),
    ("subscription_charges", "psp_event_id"),
    ("psp_events", "event_id"),
    ("psp_events", "psp_session_id"),
    ("notifications", "public_id"),
    ("api_keys", "key_hash"),
}
FRESH_DB = f"{TEST_DATABASE}_exact"


def _collations(url: str, schema: str) -> dict[tuple[str, str], str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT table_name, column_name, collation_name FROM information_schema.columns"
                    " WHERE table_schema = :schema AND collation_name IS NOT NULL"
                ),
                {"schema": schema},
            ).all()
        return {(t, c): coll for t, c, coll in rows}
    finally:
        engine.dispose()


def test_the_migrated_identifier_columns_compare_bytes_without_padding(app):
    collations = _collations(app.config["SQLALCHEMY_DATABASE_URI"], TEST_DATABASE)
    assert {col: collations[col] for col in IDENTIFIER_COLUMNS} == {
        col: "utf8mb4_nopad_bin" for col in IDENTIFIER_COLUMNS
    }
    # Free text keeps the database's collation (a dashboard search by email ignores case).
    assert collations[("payments", "customer_email")] == "utf8mb4_unicode_ci"


@pytest.mark.parametrize(
    "scheme, build",
    [
        ("mysql+pymysql", "create_all"),
        ("mariadb+pymysql", "create_all"),
        ("mariadb+pymysql", "migrations"),  # the README allows either URL
    ],
)
def test_every_way_to_build_the_schema_gives_the_same_collations(
    app, monkeypatch, restore_api, scheme, build
):
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import limiter

    url = mysql_url(FRESH_DB).replace("mysql+pymysql", scheme)
    recreate_database(FRESH_DB)
    monkeypatch.setenv("DATABASE_URL", url)
    try:
        fresh = create_app("testing")
        with fresh.app_context():
            if build == "create_all":
                db.create_all()
            else:
                upgrade()
            db.engine.dispose()
        collations = _collations(url, FRESH_DB)
        assert {col: collations[col] for col in IDENTIFIER_COLUMNS} == {
            col: "utf8mb4_nopad_bin" for col in IDENTIFIER_COLUMNS
        }
    finally:
        drop_database(FRESH_DB)
        limiter.init_app(app)


def _stores_and_finds_exactly(application) -> None:
    """References, Idempotency-Keys, public and PSP ids that differ only in case or trailing
    spaces are different rows, and each finds only itself."""
    from app.errors import PayBridgeError
    from app.payments.queries import get_payment

    with application.app_context():
        merchant, _ = add_merchant("Exact")
        first = record_payment(merchant.id, merchant_reference="a-1", session_id="cs_test_Ab1")
        second = record_payment(merchant.id, merchant_reference="A-1 ", session_id="cs_test_ab1")
        for key in ("k-1", "K-1", "k-1 "):
            db.session.add(
                IdempotencyRecord(
                    merchant_id=merchant.id,
                    idempotency_key=key,
                    method="POST",
                    path="/api/v1/payments",
                    request_fingerprint="f" * 64,
                )
            )
        for event_id in ("evt_X1", "evt_x1", "evt_X1 "):
            db.session.add(PspEvent(event_id=event_id, event_type="t", payload={}))
        db.session.commit()  # no unique key saw a duplicate

        def references(value: str) -> list[str]:
            stmt = select(Payment.merchant_reference).where(Payment.merchant_reference == value)
            return list(db.session.scalars(stmt))

        assert references("a-1") == ["a-1"]
        assert references("A-1 ") == ["A-1 "]
        assert references("A-1") == []
        session_of = select(Payment.id).where(Payment.psp_session_id == "cs_test_ab1")
        assert list(db.session.scalars(session_of)) == [second.id]
        keys = select(IdempotencyRecord.idempotency_key).where(
            IdempotencyRecord.idempotency_key == "k-1"
        )
        assert list(db.session.scalars(keys)) == ["k-1"]
        events = select(PspEvent.event_id).where(PspEvent.event_id == "evt_x1")
        assert list(db.session.scalars(events)) == ["evt_x1"]

        assert get_payment(merchant.id, first.public_id).id == first.id
        for other in (first.public_id.lower(), first.public_id.upper(), first.public_id + " "):
            if other != first.public_id:
                with pytest.raises(PayBridgeError) as caught:
                    get_payment(merchant.id, other)
                assert caught.value.code == "PAYMENT_NOT_FOUND"


def test_identifiers_match_exactly_on_mariadb(app):
    _stores_and_finds_exactly(app)


def test_identifiers_match_exactly_on_sqlite(sqlite_app):
    _stores_and_finds_exactly(sqlite_app)


def test_the_api_keeps_references_and_keys_apart_and_ids_case_sensitive(client, make_merchant, emu):
    """Through the API, on MariaDB: the second create is a payment of its own, not a 409
    duplicate reference or a 422 reused key, and a lower-cased payment id is a 404."""
    _merchant, key = make_merchant("Exact API")
    first = client.post(
        "/api/v1/payments",
        json=create_body(merchant_reference="a-1"),
        headers=auth_headers(key, "key-a-1"),
    )
    assert first.status_code == 201, first.get_json()
    # Header values lose surrounding whitespace in HTTP: the key differs by case only.
    second = client.post(
        "/api/v1/payments",
        json=create_body(merchant_reference="A-1 ", amount=1000),
        headers=auth_headers(key, "KEY-A-1"),
    )
    assert second.status_code == 201, second.get_json()
    assert second.get_json()["id"] != first.get_json()["id"]
    assert second.get_json()["merchant_reference"] == "A-1 "

    listed = client.get(
        "/api/v1/payments", query_string={"merchant_reference": "a-1"}, headers=auth_headers(key)
    )
    assert [p["id"] for p in listed.get_json()["data"]] == [first.get_json()["id"]]

    payment_id = first.get_json()["id"]
    assert (
        client.get(f"/api/v1/payments/{payment_id}", headers=auth_headers(key)).status_code == 200
    )
    for other in {payment_id.lower(), payment_id.upper()} - {payment_id}:
        answer = client.get(f"/api/v1/payments/{other}", headers=auth_headers(key))
        assert answer.status_code == 404
        assert answer.get_json()["error"]["code"] == "PAYMENT_NOT_FOUND"
