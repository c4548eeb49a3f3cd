"""GET /api/v1/refunds and /refunds/{id} against MariaDB: pages, filters, modes and tenancy."""

from __future__ import annotations

from datetime import datetime, timedelta

from app.extensions import db
from app.models import Refund
from tests.support.api import auth_headers, post_refund
from tests.support.factories import add_refund_rows, make_api_key

T0 = datetime(2026, 11, 2, 9, 0, 0)


def add_refunds(merchant_id: int, **options) -> list[str]:
    options.setdefault("start", T0)
    return [r.public_id for r in add_refund_rows(merchant_id, **options)]


def listed(client, key: str, query: str = "") -> tuple[int, dict]:
    r = client.get(f"/api/v1/refunds{query}", headers=auth_headers(key))
    return r.status_code, r.get_json()


def test_a_refund_made_through_the_api_is_listed_and_read_in_the_payments_shape(
    client, make_merchant, paid_payment
):
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id, amount=5000).public_id
    made = post_refund(client, key, pay_id, {"amount": 1200}).get_json()

    status, page = listed(client, key)
    one = client.get(f"/api/v1/refunds/{made['id']}", headers=auth_headers(key))
    payment = client.get(f"/api/v1/payments/{pay_id}", headers=auth_headers(key)).get_json()

    assert status == 200
    assert page["object"] == "list" and page["has_more"] is False and page["next_cursor"] is None
    assert [r["id"] for r in page["data"]] == [made["id"]]
    assert one.status_code == 200
    # One serializer: the list, the refund and the payment's refunds say the same thing.
    assert one.get_json() == page["data"][0] == payment["refunds"][0]
    assert one.get_json()["amount"] == 1200 and one.get_json()["payment_id"] == pay_id
    assert one.get_json()["status"] == "succeeded"


def test_pages_walk_every_refund_newest_first_once(app, client, make_merchant):
    merchant, key = make_merchant()
    with app.app_context():
        ids = add_refunds(merchant.id, n=5)
        db.session.commit()

    seen, cursor = [], None
    for _ in range(5):
        query = "?limit=2" + (f"&starting_after={cursor}" if cursor else "")
        status, page = listed(client, key, query)
        assert status == 200, page
        seen += [r["id"] for r in page["data"]]
        cursor = page["next_cursor"]
        assert page["has_more"] is (cursor is not None)
        if not cursor:
            break

    assert seen == list(reversed(ids))


def test_filters_by_status_payment_and_created_range(app, client, make_merchant):
    merchant, key = make_merchant()
    with app.app_context():
        early = add_refunds(merchant.id, n=2)  # T0, T0+1min
        late_failed = add_refunds(merchant.id, status="failed", start=T0 + timedelta(days=1))
        late_payment = (
            db.session.scalars(db.select(Refund).where(Refund.public_id == late_failed[0]))
            .one()
            .payment.public_id
        )
        db.session.commit()

    def ids(query: str) -> list[str]:
        status, page = listed(client, key, query)
        assert status == 200, page
        return [r["id"] for r in page["data"]]

    assert ids("?status=failed") == late_failed
    assert ids("?status=succeeded") == list(reversed(early))
    assert ids(f"?payment_id={late_payment}") == late_failed
    assert ids("?created_gte=2026-11-02T09:00:30Z&created_lte=2026-11-02T09:01:00Z") == early[1:]
    # +01:00 is read as such: 10:00+01:00 is 09:00 UTC, the first refund.
    assert ids("?created_lte=2026-11-02T10:00:00%2B01:00") == early[:1]
    assert ids("?payment_id=pay_doesnotexist") == []


def test_a_bad_filter_or_cursor_is_a_400_naming_it(app, client, make_merchant):
    merchant, key = make_merchant()
    other, other_key = make_merchant("Other")
    with app.app_context():
        add_refunds(merchant.id, n=2)
        add_refunds(merchant.id)  # a second payment: the payments list has a next page too
        db.session.commit()
    _, page = listed(client, key, "?limit=1")

    for query, param in (
        ("?status=done", "status"),
        ("?limit=0", "limit"),
        ("?statuss=failed", "statuss"),
        ("?created_gte=yesterday", "created_gte"),
        ("?created_gte=2026-12-02T00:00:00Z&created_lte=2026-12-01T00:00:00Z", "created_lte"),
    ):
        status, body = listed(client, key, query)
        assert status == 400, query
        assert param in str(body["error"]), (query, body)
    # Another merchant's cursor, or the payments list's, is no cursor of this list.
    payments_page = client.get("/api/v1/payments?limit=1", headers=auth_headers(key)).get_json()
    status, body = listed(client, other_key, f"?starting_after={page['next_cursor']}")
    assert status == 400 and body["error"]["code"] == "INVALID_CURSOR"
    status, body = listed(client, key, f"?starting_after={payments_page['next_cursor']}")
    assert status == 400 and body["error"]["code"] == "INVALID_CURSOR"


def test_a_key_sees_only_its_merchants_refunds_of_its_mode(app, client, make_merchant):
    merchant, test_key = make_merchant()
    live_key = make_api_key(app, merchant.id, livemode=True)
    other, other_key = make_merchant("Other")
    with app.app_context():
        test_ids = add_refunds(merchant.id)
        live_ids = add_refunds(merchant.id, livemode=True)
        others = add_refunds(other.id)
        db.session.commit()

    for key, own, foreign in (
        (test_key, test_ids, live_ids + others),
        (live_key, live_ids, test_ids + others),
    ):
        _, page = listed(client, key)
        assert [r["id"] for r in page["data"]] == own
        assert page["data"][0]["livemode"] is (key == live_key)
        assert client.get(f"/api/v1/refunds/{own[0]}", headers=auth_headers(key)).status_code == 200
        for refund_id in foreign:
            r = client.get(f"/api/v1/refunds/{refund_id}", headers=auth_headers(key))
            assert r.status_code == 404
            assert r.get_json()["error"]["code"] == "REFUND_NOT_FOUND"
    assert (
        client.get("/api/v1/refunds", headers=auth_headers(other_key)).get_json()["data"][0]["id"]
        == others[0]
    )


def test_the_list_needs_an_api_key(client):
    r = client.get("/api/v1/refunds")
    assert r.status_code == 401
