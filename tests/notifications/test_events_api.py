"""GET /api/v1/events and /events/{id} against MariaDB: the notifications as events, their
pages, filters, modes, tenancy, retention cut-off and refusals of bad input."""

from __future__ import annotations

from datetime import timedelta

from app.extensions import db
from app.models import Notification, utcnow
from app.notifications.outbox import add_payment_notification
from app.retention.service import purge
from tests.support.api import auth_headers
from tests.support.factories import add_payment_row, make_api_key


def add_events(
    merchant_id: int,
    *,
    n: int = 1,
    status: str = "SUCCESS",
    livemode: bool = False,
    age: timedelta = timedelta(hours=1),
) -> list[str]:
    """`n` payments that became final, each with the notification the outbox writes for it,
    created a minute apart, the last `age` ago: their event ids, oldest first."""
    start = utcnow() - age - timedelta(minutes=n - 1)
    ids = []
    for i in range(n):
        payment = add_payment_row(merchant_id, status=status, livemode=livemode, status_version=3)
        db.session.flush()
        note = add_payment_notification(payment)
        note.created_at = start + timedelta(minutes=i)
        ids.append(note.public_id)
    db.session.flush()
    return ids


def listed(client, key: str, query: str = "") -> tuple[int, dict]:
    r = client.get(f"/api/v1/events{query}", headers=auth_headers(key))
    return r.status_code, r.get_json()


def ids_of(client, key: str, query: str = "") -> list[str]:
    status, page = listed(client, key, query)
    assert status == 200, page
    return [event["id"] for event in page["data"]]


def test_a_paid_payments_event_is_the_notification_body_as_delivered(
    app, client, make_merchant, paid_payment
):
    merchant, key = make_merchant()
    payment = paid_payment(merchant.id, amount=4200)

    status, page = listed(client, key)
    with app.app_context():
        note = db.session.scalars(
            db.select(Notification).where(
                Notification.payment_id == payment.id,
                Notification.event_type == "payment.succeeded",
            )
        ).one()
        body = note.payload
    one = client.get(f"/api/v1/events/{note.public_id}", headers=auth_headers(key))

    assert status == 200 and page["object"] == "list" and page["has_more"] is False
    assert one.status_code == 200 and page["data"][0] == one.get_json()
    # Newest first: its payment.initiated before it.
    assert [e["type"] for e in page["data"]] == ["payment.succeeded", "payment.initiated"]
    # Counted as a read, as the other lists are.
    assert one.headers["X-RateLimit-Limit"] == str(app.config["API_RATE_LIMIT_READ_PER_SECOND"])
    event = one.get_json()
    assert event["object"] == "event" and event["created"].endswith("Z")
    # Exactly what the endpoint receives: every field of the frozen body, unchanged.
    assert {k: v for k, v in event.items() if k not in ("object", "created")} == body
    assert event["id"] == note.public_id and event["type"] == "payment.succeeded"
    assert event["data"]["id"] == payment.public_id and event["data"]["amount"] == 4200
    assert event["livemode"] is False


def test_pages_walk_every_event_newest_first_once(app, client, make_merchant):
    merchant, key = make_merchant()
    with app.app_context():
        ids = add_events(merchant.id, n=5)
        db.session.commit()

    seen, cursor = [], None
    for _ in range(5):
        query = "?limit=2" + (f"&starting_after={cursor}" if cursor else "")
        status, page = listed(client, key, query)
        assert status == 200, page
        seen += [e["id"] for e in page["data"]]
        cursor = page["next_cursor"]
        assert page["has_more"] is (cursor is not None)
        if not cursor:
            break

    assert seen == list(reversed(ids))


def test_filters_by_type_family_several_types_and_created_range(app, client, make_merchant):
    merchant, key = make_merchant()
    with app.app_context():
        paid = add_events(merchant.id, n=2, age=timedelta(hours=3))
        failed = add_events(merchant.id, status="FAILED", age=timedelta(hours=2))
        created = {
            n.public_id: n.created_at
            for n in db.session.scalars(
                db.select(Notification).where(Notification.public_id.in_(paid + failed))
            )
        }
        db.session.commit()

    def at(event_id: str, delta: timedelta = timedelta()) -> str:
        return (created[event_id] + delta).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    assert ids_of(client, key, "?type=payment.failed") == failed
    assert ids_of(client, key, "?type=payment.succeeded") == list(reversed(paid))
    assert ids_of(client, key, "?type=payment.*") == failed + list(reversed(paid))
    assert ids_of(client, key, "?type=refund.*") == []
    assert ids_of(client, key, "?type=refund.failed,%20payment.failed") == failed
    # The range is inclusive at both ends.
    assert ids_of(client, key, f"?created_gte={at(paid[1])}&created_lte={at(failed[0])}") == [
        failed[0],
        paid[1],
    ]
    assert ids_of(client, key, f"?created_lte={at(paid[1], -timedelta(seconds=1))}") == paid[:1]


def test_a_bad_filter_or_cursor_is_a_400_naming_it(app, client, make_merchant):
    merchant, key = make_merchant()
    other, other_key = make_merchant("Other")
    with app.app_context():
        add_events(merchant.id, n=2)
        db.session.commit()
    _, page = listed(client, key, "?limit=1")
    assert page["next_cursor"]

    for query, param, says in (
        ("?type=payment.succeded", "type", "not an event type"),
        ("?type=payments.*", "type", "not an event type"),
        ("?type=*", "type", "not an event type"),
        ("?type=payment.failed,,refund.failed", "type", "none empty"),
        ("?type=" + ",".join(["payment.failed"] * 21), "type", "At most 20"),
        ("?limit=0", "limit", ""),
        ("?limit=101", "limit", ""),
        ("?types=payment.failed", "types", ""),
        ("?created_gte=yesterday", "created_gte", ""),
        ("?created_lte=99999-01-01T00:00:00Z", "created_lte", ""),
        # An empty window is a mistake, refused as bulk redelivery refuses it.
        (
            "?created_gte=2026-12-07T10:00:00Z&created_lte=2026-12-07T09:00:00Z",
            "created_lte",
            "Must not be before created_gte",
        ),
    ):
        status, body = listed(client, key, query)
        assert status == 400, query
        assert body["error"]["code"] == "VALIDATION_ERROR", (query, body)
        assert param in body["error"]["details"], (query, body)
        assert says in str(body["error"]["details"][param]), (query, body)
    # Another merchant's cursor, the refunds list's, or a mangled one is no cursor of this list.
    refunds_cursor_scope = client.get("/api/v1/payments?limit=1", headers=auth_headers(key))
    for other_key_, cursor in (
        (other_key, page["next_cursor"]),
        (key, page["next_cursor"][:-2] + "AA"),
        (key, refunds_cursor_scope.get_json()["next_cursor"] or "bm90LWEtY3Vyc29y"),
    ):
        status, body = listed(client, other_key_, f"?starting_after={cursor}")
        assert status == 400 and body["error"]["code"] == "INVALID_CURSOR", body


def test_a_key_sees_only_its_merchants_events_of_its_mode(app, client, make_merchant):
    merchant, test_key = make_merchant()
    live_key = make_api_key(app, merchant.id, livemode=True)
    other, other_key = make_merchant("Other")
    with app.app_context():
        test_ids = add_events(merchant.id)
        live_ids = add_events(merchant.id, livemode=True)
        others = add_events(other.id)
        db.session.commit()

    for key, own, foreign in (
        (test_key, test_ids, live_ids + others),
        (live_key, live_ids, test_ids + others),
    ):
        status, page = listed(client, key)
        assert status == 200 and [e["id"] for e in page["data"]] == own
        assert page["data"][0]["livemode"] is (key == live_key)
        assert page["data"][0]["data"]["livemode"] is (key == live_key)
        assert client.get(f"/api/v1/events/{own[0]}", headers=auth_headers(key)).status_code == 200
        for event_id in foreign:
            r = client.get(f"/api/v1/events/{event_id}", headers=auth_headers(key))
            assert r.status_code == 404
            assert r.get_json()["error"]["code"] == "EVENT_NOT_FOUND"
    assert client.get("/api/v1/events").status_code == 401


def test_an_event_past_retention_is_gone_before_the_purge_and_kept_by_it_until_then(
    app, client, make_merchant
):
    """EVENTS_RETENTION_DAYS cuts events off at read time; the purge keeps delivered
    notifications at least that long even when RETENTION_NOTIFICATIONS_DAYS is shorter, and
    never purges one still failing."""
    merchant, key = make_merchant()
    days = app.config["EVENTS_RETENTION_DAYS"]
    with app.app_context():
        old = add_events(merchant.id, age=timedelta(days=days, minutes=5))
        kept = add_events(merchant.id, age=timedelta(days=days - 1))
        failing = add_events(merchant.id, age=timedelta(days=days + 5))
        for public_id in old + kept:
            note = db.session.scalars(
                db.select(Notification).where(Notification.public_id == public_id)
            ).one()
            note.status, note.delivered_at = "delivered", note.created_at
        for public_id in failing:  # its endpoint still fails it (this merchant has none)
            db.session.scalars(
                db.select(Notification).where(Notification.public_id == public_id)
            ).one().status = "failed"
        db.session.commit()

    assert ids_of(client, key) == kept
    for gone in old + failing:
        r = client.get(f"/api/v1/events/{gone}", headers=auth_headers(key))
        assert r.status_code == 404 and r.get_json()["error"]["code"] == "EVENT_NOT_FOUND"
    # Even asked for by date, an event past retention is not listed.
    assert ids_of(client, key, "?created_gte=2000-01-01T00:00:00Z") == kept

    notifications_days = app.config["RETENTION_NOTIFICATIONS_DAYS"]
    app.config["RETENTION_NOTIFICATIONS_DAYS"] = 1  # shorter than the events' retention
    try:
        with app.app_context():
            report = purge()
            left = set(
                db.session.scalars(
                    db.select(Notification.public_id).where(
                        Notification.public_id.in_(old + kept + failing)
                    )
                )
            )
    finally:
        app.config["RETENTION_NOTIFICATIONS_DAYS"] = notifications_days
    assert report.kept_for["notifications"] == f"{days} days"
    assert left == set(kept + failing)
