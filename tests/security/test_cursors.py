"""List cursors are opaque and sealed: they reveal no row id or time, and one that was altered,
made for another list or merchant, or under another SECRET_KEY is refused (API: 400
INVALID_CURSOR; dashboard: the first page with a warning), never a 500 and never a page of
someone else's position."""

from __future__ import annotations

import base64
import html
import json
import re
import struct
from datetime import timedelta

import pytest

from app.common import cursors
from app.extensions import db
from app.models import ReconciliationRun, utcnow
from tests.support.api import auth_headers
from tests.support.factories import add_many_payments


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _pages(client, key: str, **query) -> tuple[list[str], list[str]]:
    """Every payment id, page after page, and the cursors that led there."""
    ids, tokens, cursor = [], [], None
    while True:
        args = {**query, **({"starting_after": cursor} if cursor else {})}
        answer = client.get("/api/v1/payments", query_string=args, headers=auth_headers(key))
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        ids += [p["id"] for p in body["data"]]
        cursor = body["next_cursor"]
        if not cursor:
            return ids, tokens
        tokens.append(cursor)


@pytest.fixture
def five_payments(app, make_merchant):
    merchant, key = make_merchant("Cursors")
    with app.app_context():
        add_many_payments(merchant.id, 5, start=utcnow())
        db.session.commit()
        rows = db.session.execute(
            db.text("SELECT id, public_id FROM payments WHERE merchant_id = :m ORDER BY id"),
            {"m": merchant.id},
        ).all()
    return key, {public_id: row_id for row_id, public_id in rows}


def test_api_cursors_page_through_everything_and_show_no_row_id(client, five_payments):
    key, row_ids = five_payments
    ids, tokens = _pages(client, key, limit=2)
    assert sorted(ids) == sorted(row_ids) and len(ids) == 5
    assert len(tokens) == 2
    for token in tokens:
        raw = _raw(token)
        with pytest.raises(ValueError):
            json.loads(raw)  # the old cursor was base64 of [created_at, id]
        for row_id in row_ids.values():
            assert struct.pack(">q", row_id) not in raw
        assert re.fullmatch(r"[A-Za-z0-9_-]+", token)


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB"), id="altered"),
        pytest.param(lambda t: t[:20], id="truncated"),
        pytest.param(lambda t: t + "A", id="extended"),
        pytest.param(
            lambda t: base64.urlsafe_b64encode(b'["2026-12-01T00:00:00", 1]').decode(),
            id="old-format",
        ),
        pytest.param(lambda t: "not-a-cursor", id="garbage"),
        pytest.param(lambda t: "A" * 5000, id="huge"),
        pytest.param(lambda t: "\x00\ufffe", id="control-characters"),
    ],
)
def test_a_forged_api_cursor_is_invalid_cursor(client, five_payments, forge):
    key, _ = five_payments
    _, tokens = _pages(client, key, limit=2)
    answer = client.get(
        "/api/v1/payments",
        query_string={"limit": 2, "starting_after": forge(tokens[0])},
        headers=auth_headers(key),
    )
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["code"] in ("INVALID_CURSOR", "VALIDATION_ERROR")
    assert error["param"] == "starting_after"
    assert set(error) <= {"code", "message", "param", "details"}


def test_another_merchants_cursor_is_refused(client, five_payments, make_merchant):
    key, _ = five_payments
    _, tokens = _pages(client, key, limit=2)
    _, other_key = make_merchant("Someone else")
    answer = client.get(
        "/api/v1/payments",
        query_string={"starting_after": tokens[0]},
        headers=auth_headers(other_key),
    )
    assert answer.status_code == 400
    assert answer.get_json()["error"] == {
        "code": "INVALID_CURSOR",
        "message": "The cursor is not one this list gave out; start again from the first page.",
        "param": "starting_after",
    }


def test_a_cursor_made_under_another_secret_key_is_refused(app, client, five_payments):
    key, _ = five_payments
    _, tokens = _pages(client, key, limit=2)
    saved = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = "another installation's secret key, just as long"
    try:
        answer = client.get(
            "/api/v1/payments",
            query_string={"starting_after": tokens[0]},
            headers=auth_headers(key),
        )
    finally:
        app.config["SECRET_KEY"] = saved
    assert answer.status_code == 400
    assert answer.get_json()["error"]["code"] == "INVALID_CURSOR"


def test_a_cursor_of_one_list_does_not_open_another(app_ctx):
    token = cursors.encode_id(42, "dashboard.events")
    assert cursors.decode_id(token, "dashboard.events") == 42
    with pytest.raises(cursors.InvalidCursor):
        cursors.decode_id(token, "dashboard.audit")
    position = (utcnow(), 7)
    assert cursors.decode(cursors.encode(*position, "api.payments:1"), "api.payments:1") == position
    with pytest.raises(cursors.InvalidCursor):
        cursors.decode(cursors.encode(*position, "api.payments:1"), "api.payments:2")


# -- the dashboard ------------------------------------------------------------------------------


def _links(page: str, path: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(rf'href="({re.escape(path)}\?[^"]*)"', page)]


def test_dashboard_transactions_links_are_opaque_and_forged_ones_fall_back(app, tenants, client_a):
    with app.app_context():
        add_many_payments(tenants.a_id, 60, start=utcnow())
        db.session.commit()
    first = client_a.get("/dashboard/payments")
    assert first.status_code == 200
    older = [link for link in _links(first.get_data(as_text=True), "/dashboard/payments")
             if "after=" in link]  # fmt: skip
    assert older, "no link to the older page"
    token = re.search(r"after=([^&]+)", older[0]).group(1)
    with pytest.raises(ValueError):
        json.loads(_raw(token))
    second = client_a.get(older[0])
    assert second.status_code == 200
    assert "many-00050" in second.get_data(as_text=True)

    for forged in (token[:-2] + "xx", "WyIyMDI2LTEyLTAxVDAwOjAwOjAwIiwgMV0", "9" * 400):
        answer = client_a.get("/dashboard/payments", query_string={"after": forged})
        assert answer.status_code == 200
        page = answer.get_data(as_text=True)
        assert "This page link is not valid any more" in page
        assert "many-00000" in page  # the newest page instead


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/events",
        "/dashboard/audit",
        "/dashboard/subscriptions",
        "/dashboard/reconciliation",
    ],  # fmt: skip
)
@pytest.mark.parametrize(
    "before", ["3", "99999999999999999999999999", "-1", "x", "%ED%A0%80%FF", "%00"]
)
def test_dashboard_id_lists_refuse_raw_ids_without_a_500(client_op, path, before):
    answer = client_op.get(f"{path}?before={before}")  # sent as is: invalid UTF-8 too
    assert answer.status_code == 200
    assert "This page link is not valid any more" in answer.get_data(as_text=True)


def test_dashboard_id_list_links_are_opaque_and_work(app, tenants, client_op):
    with app.app_context():
        start = utcnow()
        for i in range(55):
            db.session.add(
                ReconciliationRun(started_at=start - timedelta(minutes=i), status="succeeded")
            )
        db.session.commit()
        newest_ids = db.session.scalars(
            db.select(ReconciliationRun.id).order_by(ReconciliationRun.id.desc())
        ).all()
    first = client_op.get("/dashboard/reconciliation")
    links = [link for link in _links(first.get_data(as_text=True), "/dashboard/reconciliation")
             if "before=" in link]  # fmt: skip
    assert len(links) == 1
    token = re.search(r"before=([^&]+)", links[0]).group(1)
    assert not token.isdigit() and len(token) > 40
    second = client_op.get(links[0])
    assert second.status_code == 200
    assert f"/dashboard/reconciliation/{newest_ids[50]}" in second.get_data(as_text=True)
    assert f'/dashboard/reconciliation/{newest_ids[49]}"' not in second.get_data(as_text=True)
