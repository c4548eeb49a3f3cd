"""The delivery log against real receivers: filters and keyset pages, each attempt's request and
response, redelivering one delivery, and every failed one of an endpoint in a time window after
a confirmation whose count is what is sent (and a second click sends nothing more)."""

from __future__ import annotations

import html as htmllib
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import (
    AuditLog,
    Merchant,
    Notification,
    NotificationDelivery,
    NotificationEndpoint,
    utcnow,
)
from app.notifications.endpoints import delete_endpoint
from app.reporting import transactions
from tests.dashboard.test_modes import cards
from tests.support.delivery_log import build_log_world
from tests.support.pages import confirmed_post, csrf_from
from tests.support.rows import get_rows

_ROW = re.compile(r'href="/dashboard/deliveries/(\d+)"')
_OLDER = re.compile(r'<a href="([^"]+)" rel="next">')
_NEWER = re.compile(r'<a href="([^"]+)" rel="prev">')
MINUTE = "%Y-%m-%dT%H:%M"


@pytest.fixture
def world(app, tenants, worker, notify_config):
    w = build_log_world(app, tenants.a_id, worker, notify_config)
    yield w
    w.stop()


def _text(response) -> str:
    return htmllib.unescape(response.get_data(as_text=True))


def _rows(client, query: str = "") -> list[int]:
    response = client.get("/dashboard/deliveries" + query)
    assert response.status_code == 200, response.status_code
    return [int(i) for i in _ROW.findall(response.get_data(as_text=True))]


def test_the_log_filters_and_pages_newest_event_first(app, client_a, client_b, world, monkeypatch):
    with app.app_context():
        bad = {n: world.delivery_id(n, world.failing_endpoint) for n in world.notes}
        good = {n: world.delivery_id(n, world.healthy_endpoint) for n in world.notes}
    n1, n2, n3, n4 = world.notes
    newest_first = [d for n in (n4, n3, n2, n1) for d in sorted((bad[n], good[n]))]
    assert _rows(client_a) == newest_first
    assert _rows(client_a, "?status=failed") == [bad[n3], bad[n2], bad[n1]]
    assert _rows(client_a, "?status=retrying") == [bad[n4]]
    assert _rows(client_a, "?status=pending") == []
    assert _rows(client_a, f"?endpoint_id={world.healthy_endpoint}") == [
        good[n] for n in (n4, n3, n2, n1)
    ]
    assert _rows(client_a, f"?endpoint_id={world.failing_endpoint}&status=delivered") == []
    assert _rows(client_a, "?event_type=payment.failed") == []
    assert _rows(client_a, f"?event={world.msg_ids[0]}") == sorted((bad[n1], good[n1]))
    window = (
        f"?created_gte={(world.now - timedelta(hours=2, minutes=30)).strftime(MINUTE)}"
        f"&created_lte={(world.now - timedelta(hours=1, minutes=30)).strftime(MINUTE)}"
    )
    assert _rows(client_a, window) == sorted((bad[n2], good[n2]))
    backwards = client_a.get(
        f"/dashboard/deliveries?created_gte={world.now.strftime(MINUTE)}"
        f"&created_lte={(world.now - timedelta(hours=1)).strftime(MINUTE)}"
    )
    assert backwards.status_code == 400 and "The end is before the start." in _text(backwards)
    assert not _ROW.search(backwards.get_data(as_text=True))  # no unfiltered list instead
    assert client_a.get("/dashboard/deliveries?status=bogus").status_code == 400
    assert client_a.get("/dashboard/deliveries?endpoint_id=we_other").status_code == 400
    assert _rows(client_b) == []  # another merchant sees none of them
    assert client_b.get(f"/dashboard/deliveries/{bad[n1]}").status_code == 404

    # Keyset pages of two events each, older and back, with the filters kept.
    monkeypatch.setattr(transactions, "PAGE_SIZE", 2)
    first = client_a.get("/dashboard/deliveries?status=failed")
    assert [int(i) for i in _ROW.findall(first.get_data(as_text=True))] == [bad[n3], bad[n2]]
    older = htmllib.unescape(_OLDER.search(first.get_data(as_text=True)).group(1))
    assert "status=failed" in older
    second = client_a.get(older)
    assert [int(i) for i in _ROW.findall(second.get_data(as_text=True))] == [bad[n1]]
    assert not _OLDER.search(second.get_data(as_text=True))
    back = htmllib.unescape(_NEWER.search(second.get_data(as_text=True)).group(1))
    assert [int(i) for i in _ROW.findall(client_a.get(back).get_data(as_text=True))] == [
        bad[n3],
        bad[n2],
    ]
    stale = client_a.get("/dashboard/deliveries?after=not-a-cursor")
    assert stale.status_code == 200 and "not valid" in _text(stale)


def test_a_delivery_shows_each_attempts_request_and_response(app, client_a, world):
    with app.app_context():
        bad = world.delivery_id(world.notes[0], world.failing_endpoint)
    page = _text(client_a.get(f"/dashboard/deliveries/{bad}"))
    assert f"POST {world.failing.url}" in page
    for header in ("webhook-id", "webhook-timestamp", "webhook-signature", "v1,"):
        assert header in page
    assert world.msg_ids[0] in page and '"type":"payment.succeeded"' in page  # the body sent
    assert "HTTP 500" in page and "X-Broken" in page  # the answer and its headers
    assert re.search(r"\d+ ms", page)
    assert "Redeliver…" in page
    # The payment's page and the endpoint's page lead here.
    payment_page = _text(
        client_a.get(re.search(r'href="(/dashboard/payments/pay_[^"]+)"', page).group(1))
    )
    assert f"/dashboard/deliveries?event={world.msg_ids[0]}" in payment_page
    endpoint_page = _text(
        client_a.get(f"/dashboard/notification-endpoints/{world.failing_endpoint}")
    )
    assert f"/dashboard/deliveries?endpoint_id={world.failing_endpoint}" in endpoint_page
    assert f"/dashboard/notification-endpoints/{world.failing_endpoint}/redeliver" in endpoint_page


def test_the_overview_counts_notifications_failing_now_retrying_ones_too(client_a, world):
    # Three gave up, one is being retried after a failed attempt: all four are failing now.
    assert cards(client_a)["Notifications failing now"] == "4"


def test_failing_now_leaves_out_old_failures_and_deleted_endpoints(app, client_a, world):
    """The figure clears once nothing can be done: a delivery that gave up longer ago than
    EVENTS_RETENTION_DAYS, or to an endpoint deleted since, is in the log but not failing now."""
    days = app.config["EVENTS_RETENTION_DAYS"]
    page = _text(client_a.get("/dashboard/"))
    assert f"or gave up in the last {days} days" in page
    assert "to an endpoint that is not deleted" in page
    with app.app_context():
        old = world.delivery_id(world.notes[0], world.failing_endpoint)
        db.session.execute(
            update(NotificationDelivery)
            .where(NotificationDelivery.id == old)
            .values(updated_at=utcnow() - timedelta(days=days, hours=1))
        )
        db.session.commit()
    assert cards(client_a)["Notifications failing now"] == "3"  # two gave up lately, one retrying

    with app.app_context():
        endpoint = db.session.scalar(
            select(NotificationEndpoint).where(
                NotificationEndpoint.public_id == world.failing_endpoint
            )
        )
        delete_endpoint(endpoint)  # the one retrying fails too: nothing is left to send
        db.session.commit()
    assert cards(client_a)["Notifications failing now"] == "0"
    assert _rows(client_a, "?status=failed")  # still in the log


def test_redeliver_one_delivery(app, client_a, world, worker):
    world.failing.status = 200
    with app.app_context():
        bad = world.delivery_id(world.notes[0], world.failing_endpoint)
    url = f"/dashboard/deliveries/{bad}/redeliver"
    done = confirmed_post(client_a, url, button="Yes, redeliver")
    assert done.status_code == 302
    assert "goes to" in _text(client_a.get(done.headers["Location"]))
    with app.app_context():
        assert db.session.get(NotificationDelivery, bad).status == "pending"
    # Pending now: the page offers no button, and a forced POST is declined.
    again = client_a.post(
        url,
        data={
            "csrf_token": csrf_from(client_a.get("/dashboard/deliveries").get_data(as_text=True))
        },
    )
    assert again.status_code == 302
    assert "still being sent" in _text(client_a.get(again.headers["Location"]))

    def delivered():
        db.session.expire_all()
        return db.session.get(NotificationDelivery, bad).status == "delivered"

    worker.run_until(delivered, what="the redelivery")
    [got] = world.failing.wait_for(1)
    assert got.headers["webhook-id"] == world.msg_ids[0]
    [row] = get_rows(app, AuditLog, action="delivery_redeliver")
    assert row.target_id == world.msg_ids[0] and row.detail["result"] == "ok"
    assert row.detail["endpoint"] == world.failing_endpoint


def test_bulk_redelivery_of_a_window_confirms_the_count_and_sends_it_once(
    app, tenants, client_a, world, worker
):
    """The window is typed in the merchant's time (New York, UTC-5 in November) and holds
    exactly the events created in it: n2 on its first second; n1 a second before it and n3 a
    second after its last minute stay failed. The log shows the same local times."""
    world.failing.status = 200
    n1, n2, n3, n4 = world.notes
    noon = datetime(2026, 11, 20, 17, 0, 0)  # 12:00 in New York
    with app.app_context():
        db.session.get(Merchant, tenants.a_id).time_zone = "America/New_York"
        for note, at in (
            (n1, noon - timedelta(seconds=1)),
            (n2, noon),
            (n3, noon + timedelta(hours=1, minutes=1)),  # 13:01:00, just after "to 13:00"
        ):
            db.session.execute(
                update(Notification).where(Notification.id == note).values(created_at=at)
            )
        db.session.commit()
        in_window = world.delivery_id(n2, world.failing_endpoint)
        its_twin = world.delivery_id(n2, world.healthy_endpoint)
    gte, lte = "2026-11-20T12:00", "2026-11-20T13:00"
    log = _text(client_a.get(f"/dashboard/deliveries?created_gte={gte}&created_lte={lte}"))
    assert "Event created (America/New_York)" in log and "2026-11-20 12:00:00" in log
    assert [int(i) for i in _ROW.findall(log)] == sorted((in_window, its_twin))
    # 9999-12-31 23:59 in New York is past the last datetime in UTC: refused, not a 500.
    assert client_a.get("/dashboard/deliveries?created_lte=9999-12-31T23:59").status_code == 400
    url = f"/dashboard/notification-endpoints/{world.failing_endpoint}/redeliver"
    chooser = _text(client_a.get(url))
    assert (
        "Count failed deliveries" in chooser and "Events created from (America/New_York)" in chooser
    )
    counted = client_a.get(f"{url}?count=1&created_gte={gte}&created_lte={lte}")
    page = _text(counted)
    question = re.search(
        r"Redeliver ([\d,]+) failed deliver(?:y|ies) to (\S+)\s+between (.+?) and (.+?)\?",
        re.sub(r"<[^>]+>", "", page),
    )
    assert question, page
    assert question.group(1) == "1" and question.group(2) == world.failing.url
    assert question.group(3) == "2026-11-20 12:00 America/New_York"
    form = dict(
        re.findall(
            r'<input type="hidden" name="(\w+)" value="([^"]*)"', counted.get_data(as_text=True)
        )
    )
    assert (
        client_a.post(url, data={k: v for k, v in form.items() if k != "csrf_token"}).status_code
        == 400
    )
    done = client_a.post(url, data=form)
    assert done.status_code == 302
    assert "Queued 1 failed delivery " in _text(client_a.get(done.headers["Location"]))
    twice = client_a.post(url, data=form)  # the same confirmation, clicked again
    assert "Nothing to send" in _text(client_a.get(twice.headers["Location"]))

    def settled():
        db.session.expire_all()
        return db.session.get(NotificationDelivery, in_window).status != "pending"

    worker.run_until(settled, what="the window's redelivery")
    [received] = world.failing.wait_for(1)
    assert received.headers["webhook-id"] == world.msg_ids[1]
    with app.app_context():
        states = {
            n: db.session.get(NotificationDelivery, world.delivery_id(n, world.failing_endpoint))
            for n in world.notes
        }
        assert states[n2].status == "delivered"
        assert states[n1].status == states[n3].status == "failed"  # just outside each edge
        assert (states[n4].status, states[n4].attempt_count) == ("pending", 1)  # left retrying
        healthy = [world.delivery_id(n, world.healthy_endpoint) for n in world.notes]
        assert {db.session.get(NotificationDelivery, d).status for d in healthy} == {"delivered"}
    assert len(world.healthy.requests) == 4  # the other endpoint got nothing more
    first, second = get_rows(app, AuditLog, action="endpoint_redeliver_failed")
    assert first.detail["queued"] == 1 and second.detail["queued"] == 0
    assert first.target_id == world.failing_endpoint
    # The audit keeps the window as read: UTC instants, marked so, and the zone it was typed in.
    assert (first.detail["created_gte"], first.detail["created_lte"]) == (
        "2026-11-20T17:00:00Z",
        "2026-11-20T18:00:59.999999Z",
    )
    assert first.detail["typed_in_zone"] == "America/New_York"

    none_left = _text(client_a.get(f"{url}?count=1&created_gte={gte}&created_lte={lte}"))
    assert "No failed deliveries to" in none_left and "Yes, redeliver" not in none_left
    bad_window = client_a.get(f"{url}?count=1&created_gte={lte}&created_lte={gte}")
    assert bad_window.status_code == 400 and "The end is before the start." in _text(bad_window)
    assert client_a.get("/dashboard/notification-endpoints/we_nope/redeliver").status_code == 404
