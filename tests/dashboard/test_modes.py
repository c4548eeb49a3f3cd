"""The dashboard shows test and live data apart, one mode at a time, as Stripe's does: a switch
in every page's header (a POST with CSRF, kept for the session), an unmistakable banner while
test data is shown, every list, figure and export of the chosen mode only, and a payment of the
other mode said to be so and not acted on."""

from __future__ import annotations

import csv
import html as htmllib
import io
import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.accounts.api_keys import create_api_key
from app.extensions import db
from app.models import (
    ApiKey,
    AuditLog,
    Merchant,
    PaymentConflict,
    PspEvent,
    ReconciliationRun,
    Refund,
    Subscription,
    utcnow,
)
from app.models.merchant import hash_api_key
from tests.support.factories import add_notification, add_payment
from tests.support.pages import csrf_from, logged_in, token_for
from tests.support.rows import get_rows

ROW_ID = re.compile(r'href="/dashboard/payments/(pay_[A-Za-z0-9]+)"')
BANNER = 'id="test-banner"'


def add_live_key(app, merchant_id: int) -> None:
    with app.app_context():
        create_api_key(db.session.get(Merchant, merchant_id), "live shop", livemode=True)
        db.session.commit()


def switch(client, mode: str, back: str = "/dashboard/"):
    """Flip the header's switch as a person does: the page's own form, token and return URL."""
    page = client.get(back).get_data(as_text=True)
    return client.post(
        "/dashboard/mode", data={"mode": mode, "next": back, "csrf_token": csrf_from(page)}
    )


def in_test_mode(client) -> bool:
    page = client.get("/dashboard/").get_data(as_text=True)
    assert ('aria-checked="true"' in page) is (BANNER in page)  # the switch and banner agree
    return BANNER in page


def cards(client, path: str = "/dashboard/") -> dict[str, str]:
    page = htmllib.unescape(client.get(path).get_data(as_text=True))
    found = re.findall(
        r'<div class="label">(?:<a [^>]*>)?([^<]+)(?:</a>)?</div>\s*'
        r'<div class="value">([^<]+)</div>',
        page,
    )
    return dict(found)


@dataclass
class Side:
    """One mode's objects of merchant A."""

    paid: str  # payment ids
    failed: str
    stuck: str
    recurring: str
    reference: str
    subscription: str
    event: str


@dataclass
class World:
    test: Side
    live: Side
    b_test: str  # merchant B's test payment
    run_id: int


def _side(merchant_id: int, livemode: bool, now) -> Side:
    mode = "live" if livemode else "test"
    paid = add_payment(
        merchant_id, status="SUCCESS", reference=f"{mode}-paid", livemode=livemode, amount=1500
    )
    failed = add_payment(
        merchant_id, status="FAILED", reference=f"{mode}-failed", livemode=livemode
    )
    stuck = add_payment(
        merchant_id,
        status="PENDING",
        reference=f"{mode}-stuck",
        livemode=livemode,
        created_at=now - timedelta(hours=3),
    )
    add_notification(failed, status="failed", attempts=[500])
    db.session.add(
        PaymentConflict(payment_id=failed.id, merchant_id=merchant_id, kind="paid_after_failed")
    )
    recurring = add_payment(
        merchant_id,
        status="SUCCESS",
        reference=f"{mode}-recurring",
        payment_type="RECC",
        livemode=livemode,
    )
    subscription = Subscription(
        merchant_id=merchant_id,
        first_payment_id=recurring.id,
        psp_subscription_id=f"sub_{mode}_{recurring.id}",
        status="active",
        interval="month",
        amount=1000,
        currency="EUR",
        livemode=livemode,
    )
    event = PspEvent(
        event_id=f"evt_{mode}_{paid.id}",
        event_type="checkout.session.completed",
        payment_id=paid.id,
        payload={"id": f"evt_{mode}_{paid.id}", "livemode": livemode},
        livemode=livemode,
        outcome=PspEvent.OUTCOME_APPLIED,
    )
    db.session.add_all([subscription, event])
    db.session.flush()
    return Side(
        paid=paid.public_id,
        failed=failed.public_id,
        stuck=stuck.public_id,
        recurring=recurring.public_id,
        reference=f"{mode}-paid",
        subscription=subscription.public_id,
        event=event.event_id,
    )


@pytest.fixture
def world(app, tenants) -> World:
    """Merchant A with the same objects in each mode; merchant B with a test payment."""
    now = utcnow()
    with app.app_context():
        test, live = _side(tenants.a_id, False, now), _side(tenants.a_id, True, now)
        b_test = add_payment(tenants.b_id, status="SUCCESS", reference="b-paid").public_id
        run = ReconciliationRun(
            trigger="schedule",
            status=ReconciliationRun.STATUS_SUCCEEDED,
            finished_at=now,
            details=[
                {"payment": test.failed, "from": "INITIATED", "to": "FAILED", "why": "expired"},
                {"payment": live.failed, "from": "INITIATED", "to": "FAILED", "why": "expired"},
            ],
        )
        db.session.add(run)
        db.session.commit()
        return World(test=test, live=live, b_test=b_test, run_id=run.id)


# --- the switch ---------------------------------------------------------------------------------


def test_a_merchant_with_only_test_keys_starts_in_test_mode_with_the_banner(client_a):
    page = client_a.get("/dashboard/payments").get_data(as_text=True)
    assert '<body class="test-data">' in page
    assert BANNER in page and "Viewing test data." in page
    switch_button = re.search(r'<button [^>]*role="switch"[^>]*>', page).group(0)
    assert 'aria-checked="true"' in switch_button and 'value="live"' in switch_button


def test_a_merchant_with_a_live_key_starts_in_live_mode(app, tenants):
    add_live_key(app, tenants.a_id)
    client = logged_in(app, tenants.a_email)
    page = client.get("/dashboard/").get_data(as_text=True)
    assert BANNER not in page and "test-data" not in page
    assert 'aria-checked="false"' in page
    # Merchant B has no live key: its users still start in test mode.
    assert in_test_mode(logged_in(app, tenants.b_email))


def test_a_merchant_with_live_payments_starts_in_live_mode(app, tenants):
    """Rows marked live when a deployment adopted live mode count, whatever its keys."""
    with app.app_context():
        add_payment(tenants.a_id, livemode=True)
        db.session.commit()
    assert not in_test_mode(logged_in(app, tenants.a_email))
    assert in_test_mode(logged_in(app, tenants.b_email))


def test_the_switch_is_a_post_with_csrf_kept_for_the_session_and_audited(app, client_a, tenants):
    assert in_test_mode(client_a)
    listing = "/dashboard/payments?status=SUCCESS"
    page = client_a.get(listing + "&after=some-cursor").get_data(as_text=True)
    # Back to the same list and filters, without the page cursor of the other mode's list.
    assert f'name="next" value="{listing}"' in htmllib.unescape(page)
    refused = client_a.post("/dashboard/mode", data={"mode": "live", "next": listing})
    assert refused.status_code == 400
    assert in_test_mode(client_a)
    token = csrf_from(page)
    bogus = client_a.post("/dashboard/mode", data={"mode": "both", "csrf_token": token})
    assert bogus.status_code == 400 and in_test_mode(client_a)

    done = client_a.post(
        "/dashboard/mode", data={"mode": "live", "next": listing, "csrf_token": token}
    )
    assert done.status_code == 302 and done.headers["Location"] == listing
    assert not in_test_mode(client_a)
    assert not in_test_mode(client_a)  # kept
    # Another session of the same user starts from its own default.
    assert in_test_mode(logged_in(app, tenants.a_email))
    (row,) = get_rows(app, AuditLog, action="mode_switch")
    assert row.detail == {"livemode": True} and row.merchant_id == tenants.a_id

    elsewhere = switch(client_a, "test", "/dashboard/payments")
    assert elsewhere.headers["Location"] == "/dashboard/payments"
    outside = client_a.post(
        "/dashboard/mode",
        data={"mode": "test", "next": "https://evil.example/", "csrf_token": token},
    )
    assert outside.headers["Location"] == "/dashboard/"  # never away from the dashboard


# --- every list and figure shows one mode -------------------------------------------------------


def _shown(client, path: str) -> set[str]:
    return set(ROW_ID.findall(client.get(path).get_data(as_text=True)))


def test_every_list_and_figure_shows_only_the_mode_in_view(app, client_a, world):
    for mode, mine, other in (("test", world.test, world.live), ("live", world.live, world.test)):
        assert switch(client_a, mode).status_code == 302
        # transactions, filters and search
        listed = _shown(client_a, "/dashboard/payments")
        assert {mine.paid, mine.failed, mine.stuck} <= listed
        assert not {other.paid, other.failed, other.stuck} & listed
        assert _shown(client_a, "/dashboard/payments?status=FAILED") == {mine.failed}
        assert _shown(client_a, f"/dashboard/payments?q={mine.reference}") == {mine.paid}
        assert _shown(client_a, f"/dashboard/payments?q={other.reference}") == set()
        assert _shown(client_a, f"/dashboard/payments?q={other.paid}") == set()
        # overview: figures, charts, attention lists
        figures = cards(client_a)
        assert figures["Payments started"] == "4"  # paid, failed, stuck, recurring
        assert figures["Stuck > 1 h, not final"] == "1"
        assert figures["Notifications failing now"] == "1"
        assert figures["Open conflicts"] == "1"
        overview = client_a.get("/dashboard/").get_data(as_text=True)
        assert "4 payments over 30 days" in overview
        assert mine.stuck in overview and other.stuck not in overview
        assert mine.failed in overview and other.failed not in overview
        # PSP events, subscriptions, a reconciliation run's lines
        events = client_a.get("/dashboard/events").get_data(as_text=True)
        assert mine.event in events and other.event not in events
        subscriptions = client_a.get("/dashboard/subscriptions").get_data(as_text=True)
        assert mine.subscription in subscriptions and other.subscription not in subscriptions
        run = client_a.get(f"/dashboard/reconciliation/{world.run_id}").get_data(as_text=True)
        assert mine.failed in run and other.failed not in run


def test_the_operator_sees_every_merchants_payments_of_one_mode(app, client_op, world):
    # Merchant A has live payments (no live key: rows a deployment marked live), so the
    # operator's session starts on live data.
    assert not in_test_mode(client_op)
    listed = _shown(client_op, "/dashboard/payments")
    assert world.live.paid in listed and not {world.test.paid, world.b_test} & listed
    assert cards(client_op)["Payments started"] == "4"
    assert switch(client_op, "test").status_code == 302
    listed = _shown(client_op, "/dashboard/payments")
    assert {world.test.paid, world.b_test} <= listed and world.live.paid not in listed
    assert cards(client_op)["Payments started"] == "5"  # A's four and B's one
    # A run's counts are of both modes, and say so; its lines are the mode in view's.
    run = client_op.get(f"/dashboard/reconciliation/{world.run_id}").get_data(as_text=True)
    assert "of both modes (a run checks each mode in use)" in run
    assert "the payment lines below are the test mode" in run
    runs = client_op.get("/dashboard/reconciliation").get_data(as_text=True)
    assert '<p class="muted">A run checks each mode in use: its counts are of both modes.' in runs


def test_the_csv_export_carries_livemode_and_only_the_mode_in_view(client_a, world):
    switch(client_a, "test")  # A has live payments: its session started on live data
    response = client_a.get("/dashboard/payments/export.csv")
    body = response.get_data(as_text=True)  # read whole first: it streams in its request
    assert 'filename="payments-test-' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(body)))
    test = world.test
    assert {r["payment_id"] for r in rows} == {test.paid, test.failed, test.stuck, test.recurring}
    assert len(rows) == 4 and {r["livemode"] for r in rows} == {"false"}

    switch(client_a, "live")
    response = client_a.get("/dashboard/payments/export.csv?status=SUCCESS")
    body = response.get_data(as_text=True)  # read whole first: it streams in its request
    assert 'filename="payments-live-' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(body)))
    # newest first
    assert [r["payment_id"] for r in rows] == [world.live.recurring, world.live.paid]
    assert {r["livemode"] for r in rows} == {"true"}


# --- one object of the other mode ---------------------------------------------------------------


def test_a_payment_of_the_other_mode_says_so_and_is_not_acted_on(app, client_a, world):
    switch(client_a, "test")
    live = world.live.paid
    response = client_a.get(f"/dashboard/payments/{live}")
    assert response.status_code == 200  # a link someone shared still opens
    page = htmllib.unescape(response.get_data(as_text=True))
    assert "This is a live payment; you are viewing test data" in page
    assert "Refund…" not in page and "Reconcile with the PSP…" not in page
    assert '<span class="badge badge-live">Live</span>' in page

    for action in ("refund", "reconcile", "expire"):
        declined = client_a.get(f"/dashboard/payments/{live}/{action}")
        assert declined.status_code == 302
        assert declined.headers["Location"] == f"/dashboard/payments/{live}"
    token = token_for(client_a, "/dashboard/")
    refused = client_a.post(
        f"/dashboard/payments/{live}/refund",
        data={"amount": "5.00", "reason": "duplicate", "token": "t" * 24, "confirmed": "yes",
              "csrf_token": token},
    )  # fmt: skip
    assert refused.status_code == 302
    said = htmllib.unescape(client_a.get(refused.headers["Location"]).get_data(as_text=True))
    assert "Nothing was done: this payment is in live mode and you are viewing test data." in said
    assert get_rows(app, Refund) == []

    # The page's own switch goes back to the payment, now in its mode, with its actions.
    form = re.search(r'<section class="mode-box".*?</section>', page, re.S).group(0)
    assert 'value="live"' in form
    back = client_a.post(
        "/dashboard/mode",
        data={"mode": "live", "next": f"/dashboard/payments/{live}", "csrf_token": csrf_from(form)},
    )
    assert back.headers["Location"] == f"/dashboard/payments/{live}"
    page = client_a.get(back.headers["Location"]).get_data(as_text=True)
    assert "you are viewing" not in page and "Refund…" in page


def test_a_subscription_and_an_event_show_their_mode(app, client_a, world):
    switch(client_a, "test")
    page = client_a.get(f"/dashboard/subscriptions/{world.live.subscription}").get_data(
        as_text=True
    )
    assert '<span class="badge badge-live">Live</span>' in page
    assert "This is a live subscription; you are viewing test data" in htmllib.unescape(page)
    assert "Cancel subscription…" not in page
    cancel = f"/dashboard/subscriptions/{world.live.subscription}/cancel"
    assert client_a.get(cancel).headers["Location"].endswith(world.live.subscription)
    with app.app_context():
        event_id = db.session.scalar(
            select(PspEvent.id).where(PspEvent.event_id == world.test.event)
        )
    page = client_a.get(f"/dashboard/events/{event_id}").get_data(as_text=True)
    assert '<span class="badge badge-test">Test</span>' in page


# --- API keys -----------------------------------------------------------------------------------


def test_the_api_keys_page_creates_test_and_live_keys_and_shows_each_ones_mode(
    app, client_a, tenants
):
    form = client_a.get("/dashboard/api-keys").get_data(as_text=True)
    # The form offers the key of the mode in view first (test here).
    assert re.search(
        r'<input[^>]*checked[^>]*value="test"|<input[^>]*value="test"[^>]*checked', form
    )
    token = csrf_from(form)
    raws = {}
    for mode in ("live", "test"):
        page = client_a.post(
            "/dashboard/api-keys", data={"name": f"{mode} shop", "mode": mode, "csrf_token": token}
        ).get_data(as_text=True)
        raws[mode] = page.split('id="new-api-key">')[1].split("<")[0]
    assert raws["live"].startswith("pbk_live_") and raws["test"].startswith("pbk_test_")
    with app.app_context():
        for mode, raw in raws.items():
            key = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(raw)))
            assert key.livemode is (mode == "live") and key.merchant_id == tenants.a_id
    listing = client_a.get("/dashboard/api-keys").get_data(as_text=True)
    for mode, raw in raws.items():
        row = re.search(rf"<tr>\s*<th scope=\"row\"><code>{raw[:16]}….*?</tr>", listing, re.S)
        label = "Live" if mode == "live" else "Test"
        assert f'<span class="badge badge-{mode}">{label}</span>' in row.group(0)
    missing = client_a.post("/dashboard/api-keys", data={"name": "x", "csrf_token": token})
    assert missing.status_code == 400 and "Choose test or live." in missing.get_data(as_text=True)


def test_a_live_key_is_refused_where_live_mode_is_not_configured(app, client_a, monkeypatch):
    monkeypatch.setitem(app.config, "STRIPE_LIVE_SECRET_KEY", None)
    token = token_for(client_a, "/dashboard/api-keys")
    response = client_a.post(
        "/dashboard/api-keys", data={"name": "live", "mode": "live", "csrf_token": token}
    )
    assert response.status_code == 400
    assert "does not run live mode" in htmllib.unescape(response.get_data(as_text=True))
    assert get_rows(app, ApiKey, livemode=True) == []
