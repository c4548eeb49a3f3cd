"""Steps the benchmark runs inside the application (same environment as gunicorn and the worker).

`python -m bench.appctl COMMAND …`; the last line printed is JSON for the orchestrator.
It only uses the app's public functions and models; nothing here changes how the app behaves.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import sys
import time
from collections import defaultdict

from sqlalchemy import event, select, text, update

from app import create_app
from app.extensions import db

PASSWORD = "bench-password-123"


def _out(data) -> None:
    print(json.dumps(data, default=str))


def setup(args) -> None:
    """Merchants, each with an API key, a notify URL and a dashboard user: one app start for
    all of them (each start of this command costs ~2 s of imports)."""
    from app.accounts.service import create_user
    from app.models import ApiKey, Merchant, NotificationEndpoint
    from app.notifications.event_types import LEGACY_EVENT_TYPES

    made = []
    for name, notify_url in json.loads(args.merchants):
        merchant = Merchant(name=name)
        key, raw = ApiKey.generate(merchant)
        db.session.add_all([merchant, key])
        db.session.flush()
        if notify_url:
            db.session.add(
                NotificationEndpoint(
                    merchant_id=merchant.id, url=notify_url, event_types=list(LEGACY_EVENT_TYPES)
                )
            )
        email = f"{name.lower().replace(' ', '-')}-{secrets.token_hex(3)}@bench.example"
        create_user(email, PASSWORD, merchant_id=merchant.id, operator=False)
        made.append(
            {"merchant_id": merchant.id, "api_key": raw, "email": email, "password": PASSWORD}
        )
    db.session.commit()
    _out(made)


def operator(args) -> None:
    """A dashboard operator (every merchant's data), for the reads across merchants."""
    from app.accounts.service import create_user

    email = f"operator-{secrets.token_hex(3)}@bench.example"
    create_user(email, PASSWORD, merchant_id=None, operator=True)
    db.session.commit()
    _out({"email": email, "password": PASSWORD})


def release_notifications(args) -> None:
    """Make a loaded backlog (notifications with id >= min_id, held by the loader) new at once,
    as when a burst of status changes lands: one UPDATE, and the workers' pumps take it from
    there (fan-out to the merchant's endpoint, then delivery)."""
    from app.models import Notification

    started = time.time()
    released = db.session.execute(
        update(Notification)
        .where(Notification.id >= args.min_id)
        .where(Notification.status == Notification.STATUS_PENDING)
        .values(status=Notification.STATUS_NEW, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    _out({"released": released, "seconds": round(time.time() - started, 2), "started": started})


def recon(args) -> None:
    """One reconciliation run as the scheduled job does it, recording every PSP call's time."""
    from app.models import ReconciliationRun
    from app.reconciliation import ratelimit
    from app.reconciliation.service import run_reconciliation

    calls: list[tuple[str, float]] = []
    ratelimit.add_call_observer(lambda op, at: calls.append((op, at)))
    passes: dict[str, float] = {}

    class PassTimes(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if hasattr(record, "recon_pass"):
                name, seconds = record.recon_pass
                passes[name] = seconds

    handler = PassTimes(level=logging.INFO)
    service_log = logging.getLogger("app.reconciliation.service")
    service_log.addHandler(handler)
    service_log.setLevel(logging.INFO)
    started = time.time()
    run = run_reconciliation(trigger="cli")
    elapsed = time.time() - started
    service_log.removeHandler(handler)
    run = db.session.get(ReconciliationRun, run.id)
    by_op: dict[str, int] = defaultdict(int)
    for op, _ in calls:
        by_op[op] += 1
    window = _max_calls_per_second([at for _, at in calls])
    columns = {c.key: getattr(run, c.key) for c in ReconciliationRun.__table__.columns}
    columns.pop("details", None)
    _out(
        {
            "elapsed_s": round(elapsed, 2),
            "psp_calls": len(calls),
            "calls_by_op": dict(by_op),
            "max_calls_in_any_1s": window,
            "pass_seconds": passes,
            "first_call": calls[0][1] if calls else None,
            "last_call": calls[-1][1] if calls else None,
            "run": columns,
        }
    )


def _max_calls_per_second(times: list[float]) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


# The tables whose reads the bench's lists must serve from an index.
EXPLAINED_TABLES = (
    "payments",
    "payment_status_history",
    "payment_attempts",
    "payment_rollup",
    "refunds",
    "disputes",
)


def explain(args) -> None:
    """Request each URL through the app (logged in), capture its SELECTs and EXPLAIN them."""
    from flask import current_app

    from app.models import User

    current_app.config["WTF_CSRF_ENABLED"] = False
    current_app.config["RATELIMIT_ENABLED"] = False
    urls = json.loads(args.urls)
    user = db.session.scalar(select(User).where(User.email == args.email))
    captured: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    client = current_app.test_client()
    resp = client.post(
        "/dashboard/login", data={"email": user.email, "password": PASSWORD}, follow_redirects=False
    )
    if resp.status_code not in (302, 303):
        raise SystemExit(f"login failed: {resp.status_code}")
    report = []
    raw = engine.raw_connection()
    try:
        for name, url, headers in urls:
            captured.clear()
            started = time.perf_counter()
            resp = client.get(url, headers=headers or {})
            body = resp.get_data()
            ms = (time.perf_counter() - started) * 1000
            entries = []
            seen = set()
            for statement, params in captured:
                if not any(f"FROM {table}" in statement for table in EXPLAINED_TABLES):
                    continue
                key = (statement, repr(params))
                if key in seen:
                    continue
                seen.add(key)
                cur = raw.cursor()
                cur.execute("EXPLAIN " + statement, params)
                cols = [d[0] for d in cur.description]
                plan = [dict(zip(cols, row, strict=False)) for row in cur.fetchall()]
                cur.close()
                entries.append(
                    {
                        "sql": " ".join(statement.split())[:1200],
                        "params": repr(params)[:300],
                        "explain": plan,
                    }
                )
            report.append(
                {
                    "name": name,
                    "url": url,
                    "status": resp.status_code,
                    "bytes": len(body),
                    "in_process_ms": round(ms, 1),
                    "queries": len(captured),
                    "all_statements": [" ".join(st.split())[:120] for st, _ in captured],
                    "statements": entries,
                }
            )
    finally:
        raw.close()
        event.remove(engine, "before_cursor_execute", capture)
    _out(report)


def trace(args) -> None:
    """Send requests through the app in-process and list every SQL statement each one ran."""
    from flask import current_app

    captured: list[str] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append(" ".join(statement.split())[:160])

    event.listen(db.engine, "before_cursor_execute", capture)
    client = current_app.test_client()
    report = []
    try:
        for name, method, url, headers, body in json.loads(args.requests):
            captured.clear()
            started = time.perf_counter()
            resp = client.open(
                url, method=method, headers=headers or {}, data=body.encode() if body else None
            )
            ms = (time.perf_counter() - started) * 1000
            report.append(
                {
                    "name": name,
                    "status": resp.status_code,
                    "ms": round(ms, 1),
                    "queries": len(captured),
                    "statements": list(captured),
                }
            )
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    _out(report)


def stats(args) -> None:
    """Row counts the auditor and the report use."""
    tables = ["payments", "payment_status_history", "notifications", "psp_events"]
    out = {t: db.session.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar() for t in tables}
    _out(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup")
    p.add_argument("--merchants", required=True, help="JSON list of [name, notify_url]")
    sub.add_parser("operator")
    p = sub.add_parser("release-notifications")
    p.add_argument("--min-id", type=int, default=0)
    sub.add_parser("recon")
    p = sub.add_parser("explain")
    p.add_argument("--email", required=True)
    p.add_argument("--urls", required=True, help="JSON list of [name, url, headers]")
    p = sub.add_parser("trace")
    p.add_argument(
        "--requests", required=True, help="JSON list of [name, method, url, headers, body]"
    )
    sub.add_parser("stats")
    args = parser.parse_args(argv)
    app = create_app()
    with app.app_context():
        {
            "setup": setup,
            "operator": operator,
            "release-notifications": release_notifications,
            "recon": recon,
            "explain": explain,
            "trace": trace,
            "stats": stats,
        }[args.command](args)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
