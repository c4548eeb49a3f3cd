"""Overview figures and charts, reconciliation and events pages, error pages, the users CLI."""

from __future__ import annotations

import html as htmllib
import re
from datetime import datetime, timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, PaymentConflict, PspEvent, ReconciliationRun, User, utcnow
from tests.support.factories import add_notification, add_payment
from tests.support.pages import confirmed_post
from tests.support.rows import get_rows


def test_overview_counts_rates_and_attention_lists(app, client_a, tenants):
    now = utcnow()
    with app.app_context():
        for _ in range(3):
            add_payment(
                tenants.a_id, status="SUCCESS", amount=2500, created_at=now - timedelta(minutes=5)
            )
        failed = add_payment(tenants.a_id, status="FAILED", created_at=now - timedelta(days=1))
        add_payment(
            tenants.a_id,
            status="SUCCESS",
            amount=700,
            currency="USD",
            created_at=now - timedelta(days=2),
        )
        stuck = add_payment(
            tenants.a_id,
            status="PENDING",
            reference="stuck-one",
            created_at=now - timedelta(hours=3),
        )
        add_payment(tenants.a_id, status="INITIATED", created_at=now - timedelta(minutes=10))
        add_payment(tenants.a_id, status="SUCCESS", created_at=now - timedelta(days=40))  # too old
        add_payment(tenants.b_id, status="FAILED", created_at=now)  # someone else's
        add_notification(failed, status="failed", attempts=[500, 500])
        db.session.add(
            PaymentConflict(
                payment_id=failed.id, merchant_id=tenants.a_id, kind="paid_after_failed"
            )
        )
        db.session.commit()
        stuck_id = stuck.public_id
    response = client_a.get("/dashboard/")
    page = htmllib.unescape(response.get_data(as_text=True))
    cards = dict(
        re.findall(
            r'<div class="label">(?:<a [^>]*>)?([^<]+)(?:</a>)?</div>\s*'
            r'<div class="value">([^<]+)</div>',
            page,
        )
    )
    assert cards["Payments started"] == "7"
    assert cards["Conversion rate"].replace("\xa0", " ") == "57.1 %"  # 4 paid of 7 started
    assert cards["Stuck > 1 h, not final"] == "1"
    assert cards["Notifications failing now"] == "1"
    assert cards["Open conflicts"] == "1"
    assert stuck_id in page
    # charts: inline SVG with a title and a text summary, plus the numbers as a table
    assert page.count('<svg class="chart"') == 3  # volume + EUR + USD
    assert "<title" in page and "Payments per day" in page
    assert "7 payments over 30 days" in page
    assert "Gross volume per day (EUR)" in page
    assert "total 75.00 EUR" in page
    assert '<th scope="row">' + now.date().isoformat() + "</th>" in page


def test_overview_without_payments_is_calm(client_a):
    page = htmllib.unescape(client_a.get("/dashboard/").get_data(as_text=True))
    assert "0 payments over 30 days" in page
    assert "Conversion rate" in page and "—" in page
    assert "No payments, refunds or disputes in this period or the one before." in page


def test_reconciliation_pages_and_run_now(app, client_a, client_op, tenants, emulator):
    with app.app_context():
        mine = add_payment(tenants.a_id, status="SUCCESS")
        theirs = add_payment(tenants.b_id, status="FAILED")
        run = ReconciliationRun(
            trigger="schedule",
            status=ReconciliationRun.STATUS_SUCCEEDED,
            checked=2,
            corrected=2,
            finished_at=utcnow(),
            sessions_compared_until=datetime(2026, 12, 3, 10, 15),
            details=[
                {"payment": mine.public_id, "from": "PENDING", "to": "SUCCESS", "why": "paid"},
                {
                    "payment": theirs.public_id,
                    "from": "INITIATED",
                    "to": "FAILED",
                    "why": "expired",
                },
            ],
        )
        db.session.add(run)
        db.session.commit()
        run_id, mine_id, theirs_id = run.id, mine.public_id, theirs.public_id
    assert f"#{run_id}" in client_a.get("/dashboard/reconciliation").get_data(as_text=True)
    detail = client_a.get(f"/dashboard/reconciliation/{run_id}").get_data(as_text=True)
    assert mine_id in detail and theirs_id not in detail
    op_detail = client_op.get(f"/dashboard/reconciliation/{run_id}").get_data(as_text=True)
    assert mine_id in op_detail and theirs_id in op_detail
    assert "Sessions compared until</dt><dd><time" in op_detail
    assert "2026-12-03 10:15:00 UTC" in op_detail

    done = confirmed_post(client_op, "/dashboard/reconciliation/run", button="Yes, run it now")
    assert done.status_code == 302
    with app.app_context():
        newest = db.session.scalar(select(ReconciliationRun).order_by(ReconciliationRun.id.desc()))
        assert newest.id != run_id and newest.trigger == "dashboard"
    assert done.headers["Location"].endswith(f"/dashboard/reconciliation/{newest.id}")
    finished = client_op.get(done.headers["Location"]).get_data(as_text=True)
    assert "Summary" in finished and "psp calls" in finished
    (row,) = [r for r in get_rows(app, AuditLog) if r.action == "reconciliation_run"]
    assert row.target_id == str(newest.id) and row.detail["result"] == "ok"


def test_events_page_filters_by_outcome_and_type(app, client_op):
    with app.app_context():
        for event_id, etype, outcome in [
            ("evt_1", "checkout.session.completed", PspEvent.OUTCOME_APPLIED),
            ("evt_2", "checkout.session.expired", PspEvent.OUTCOME_IGNORED),
            ("evt_3", "charge.refunded", PspEvent.OUTCOME_UNHANDLED),
        ]:
            db.session.add(
                PspEvent(
                    event_id=event_id, event_type=etype, payload={"id": event_id}, outcome=outcome
                )
            )
        db.session.commit()

    def shown(query):
        page = client_op.get(f"/dashboard/events?{query}").get_data(as_text=True)
        return set(re.findall(r"<code>(evt_\d)</code>", page))

    assert shown("") == {"evt_1", "evt_2", "evt_3"}
    assert shown("outcome=ignored") == {"evt_2"}
    assert shown("event_type=charge.refunded") == {"evt_3"}
    assert shown("outcome=applied&event_type=charge.refunded") == set()
    assert client_op.get("/dashboard/events?outcome=bogus").status_code == 400


def test_crash_shows_a_human_500_page(app, client_a, monkeypatch):
    from app.reporting import queries

    def boom(**kwargs):
        raise RuntimeError("database exploded")

    monkeypatch.setattr(queries, "attention", boom)
    response = client_a.get("/dashboard/")
    assert response.status_code == 500
    page = htmllib.unescape(response.get_data(as_text=True))
    assert "Something went wrong on our side" in page
    assert "exploded" not in page and "Traceback" not in page


def test_users_cli_creates_merchant_and_operator_users(app, runner, tenants):
    result = runner.invoke(
        args=["users", "create", "New@Shop-A.example", "--merchant-id", str(tenants.a_id)],
        env={"PAYBRIDGE_USER_PASSWORD": "a long enough password"},
    )
    assert result.exit_code == 0, result.output
    assert "Created dashboard user new@shop-a.example (merchant" in result.output
    result = runner.invoke(
        args=[
            "users",
            "create",
            "root@paybridge.example",
            "--operator",
            "--password",
            "operator pass 123",
        ]
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "new@shop-a.example"))
        assert user.merchant_id == tenants.a_id and user.check_password("a long enough password")
        assert (
            db.session.scalar(select(User.role).where(User.email == "root@paybridge.example"))
            == "operator"
        )
    for args, message in [
        (
            [
                "users",
                "create",
                "x@y.example",
                "--merchant-id",
                "999999",
                "--password",
                "long password 1",
            ],
            "needs an existing --merchant-id",
        ),
        (
            [
                "users",
                "create",
                "x@y.example",
                "--merchant-id",
                str(tenants.a_id),
                "--password",
                "short",
            ],
            "at least 10 characters",
        ),
        (
            [
                "users",
                "create",
                "new@shop-a.example",
                "--merchant-id",
                str(tenants.a_id),
                "--password",
                "long password 1",
            ],
            "exists already",
        ),
    ]:
        result = runner.invoke(args=args)
        assert result.exit_code != 0
        assert message in result.output


def test_attention_counters_stop_at_the_cap(app, client_a, tenants, monkeypatch):
    from app.reporting import queries

    monkeypatch.setattr(queries, "COUNT_CAP", 2)
    old = utcnow() - timedelta(hours=2)
    with app.app_context():
        for status in ("CREATED", "INITIATED", "PENDING"):
            add_payment(tenants.a_id, status=status, created_at=old)
        add_payment(tenants.a_id, status="PENDING", created_at=utcnow())  # moved recently
        db.session.commit()
    page = client_a.get("/dashboard/").get_data(as_text=True)
    assert '<div class="value">2+</div>' in page
    assert "Showing the 3 oldest of 2+." not in page  # 3 listed, the count says "2+"
    assert page.count("/dashboard/payments/pay_") >= 3
