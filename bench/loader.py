"""A fast loader: N payments with their status history (and optionally outbox rows) straight into
MariaDB with LOAD DATA LOCAL INFILE, bypassing the app (a million rows in a few minutes, where the
ORM would take an hour). Rows look like the app's: same id formats, history versions, statuses.
"""

from __future__ import annotations

import json
import os
import random
import string
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pymysql

_ALPHA = string.ascii_letters + string.digits
CURRENCIES = ["EUR"] * 6 + ["USD"] * 2 + ["GBP", "JPY", "SEK", "CHF"]
FINAL = {"SUCCESS", "FAILED"}


# Random bytes mapped onto the id alphabet: ids of the same form as "".join(rng.choices(...)),
# at a tenth of its cost (a million payments need ~6 million of them).
_ID_TABLE = bytes(ord(_ALPHA[i % len(_ALPHA)]) for i in range(256))


def _rid(rng: random.Random, n: int = 24) -> str:
    return rng.randbytes(n).translate(_ID_TABLE).decode("ascii")


def _ts(value: datetime) -> str:
    # str() is isoformat(" "): "YYYY-MM-DD HH:MM:SS[.ffffff]", which MariaDB reads as it is;
    # strftime cost a tenth of the generation time.
    return str(value)


def _tsv(values) -> str:
    """A TSV line of generated values: none holds a tab, newline or backslash, so only None
    needs writing as \\N (_esc, for the JSON payloads, escapes the rest)."""
    return "\t".join("\\N" if v is None else str(v) for v in values) + "\n"


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _esc(value) -> str:
    if value is None:
        return "\\N"
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


PAYMENT_COLUMNS = (
    "id public_id merchant_id merchant_reference amount currency payment_type `interval` "
    "interval_count description customer_email success_url cancel_url metadata status "
    "status_version psp psp_session_id psp_payment_intent_id checkout_url psp_expires_at "
    "failure_code failure_message refunded_amount created_at updated_at finalized_at"
).split()
HISTORY_COLUMNS = (
    "payment_id from_status to_status status_version source reason psp_event_id created_at"
).split()
# A loaded backlog is due only once `appctl release-notifications` says so: the worker's pump
# would otherwise start on the first rows while the rest still load.
HELD_UNTIL = datetime(2099, 1, 1)
NOTIFICATION_COLUMNS = (
    "public_id merchant_id payment_id event_type status_version payload status attempt_count "
    "next_attempt_at created_at updated_at"
).split()


def load(
    conn: pymysql.Connection,
    *,
    merchant_id: int,
    count: int,
    prefix: str,
    span: timedelta,
    status_weights: dict[str, float],
    notifications: bool = False,
    seed: int = 7,
) -> dict:
    """Insert `count` payments created over the `span` before now; returns ids and timings."""
    rng = random.Random(seed)
    statuses = list(status_weights)
    weights = list(status_weights.values())
    now = datetime.now(UTC).replace(tzinfo=None)
    start = now - span
    with conn.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM payments")
        first_id = cur.fetchone()[0] + 1
    tmp = tempfile.mkdtemp(prefix="pb_bench_load_")
    pay_path, hist_path, notif_path = (os.path.join(tmp, n) for n in ("p.tsv", "h.tsv", "n.tsv"))
    t0 = time.perf_counter()
    history_rows = 0
    step = span.total_seconds() / max(count, 1)
    with open(pay_path, "w") as pf, open(hist_path, "w") as hf, open(notif_path, "w") as nf:
        for i in range(count):
            pid = first_id + i
            created = start + timedelta(seconds=i * step + rng.random() * step)
            status = rng.choices(statuses, weights)[0]
            currency = rng.choice(CURRENCIES)
            recc = rng.random() < 0.05
            amount = rng.randint(100, 50000) if currency != "JPY" else rng.randint(100, 50000) * 10
            public = "pay_" + _rid(rng)
            session = "cs_test_" + _rid(rng, 40)
            email = f"customer{rng.randint(1, 200000)}@example.com"
            versions = ["CREATED", "INITIATED"] + ([status] if status != "INITIATED" else [])
            if status == "FAILED" and rng.random() < 0.3:
                versions = ["CREATED", "FAILED"]
            times = [
                created + timedelta(seconds=k * rng.uniform(0.2, 90)) for k in range(len(versions))
            ]
            final_at = times[-1] if status in FINAL else None
            failure = (
                ("card_declined", "Your card was declined.") if status == "FAILED" else (None, None)
            )
            pi = ("pi_" + _rid(rng)) if status in ("SUCCESS", "PENDING") else None
            row = [
                pid,
                public,
                merchant_id,
                f"{prefix}-{i:08d}",
                amount,
                currency,
                "RECC" if recc else "SALE",
                "month" if recc else None,
                1 if recc else None,
                f"Order {prefix}-{i}",
                email,
                "https://shop.example/ok",
                "https://shop.example/cancel",
                "{}",
                status,
                len(versions),
                "stripe",
                session if versions[1:2] == ["INITIATED"] else None,
                pi,
                None,
                _ts(created + timedelta(hours=1)),
                failure[0],
                failure[1],
                0,
                _ts(created),
                _ts(times[-1]),
                _ts(final_at) if final_at else None,
            ]
            pf.write(_tsv(row))
            prev = None
            for version, (to, at) in enumerate(zip(versions, times, strict=True), start=1):
                source = "api" if to in ("CREATED", "INITIATED") else "webhook"
                event = ("evt_" + _rid(rng)) if source == "webhook" else None
                hf.write(_tsv((pid, prev, to, version, source, None, event, _ts(at))))
                prev = to
                history_rows += 1
            if notifications and status in FINAL:
                msg = "msg_" + _rid(rng)
                kind = "payment.succeeded" if status == "SUCCESS" else "payment.failed"
                data = {
                    "id": public,
                    "object": "payment",
                    "merchant_reference": row[3],
                    "amount": amount,
                    "currency": currency,
                    "status": status,
                    "status_version": len(versions),
                    "psp_session_id": row[17],
                    "created_at": _iso(created),
                    "updated_at": _iso(times[-1]),
                }
                payload = {"id": msg, "type": kind, "timestamp": _iso(now), "data": data}
                nrow = [
                    msg,
                    merchant_id,
                    pid,
                    kind,
                    len(versions),
                    json.dumps(payload),
                    "pending",
                    0,
                    _ts(HELD_UNTIL),  # held back until the scenario releases the backlog
                    _ts(now),
                    _ts(now),
                ]
                nf.write("\t".join(_esc(v) for v in nrow) + "\n")
    generated = time.perf_counter() - t0
    # The history (and outbox) rows load on a second connection while the payments load: two
    # LOAD DATA statements, one per table as before (so each still builds its indexes in bulk),
    # on the server's two cores instead of one after the other.
    with ThreadPoolExecutor(1) as pool:
        second = pool.submit(_load_rest, _reconnect(conn), hist_path, notif_path, notifications)
        payments_s = _load_data(conn, "payments", PAYMENT_COLUMNS, pay_path)
        history_s, notifications_s = second.result()
    with conn.cursor() as cur:
        cur.execute("ANALYZE TABLE payments, payment_status_history")
        cur.fetchall()
    for path in (pay_path, hist_path, notif_path):
        os.unlink(path)
    os.rmdir(tmp)
    total = time.perf_counter() - t0
    return {
        "payments": count,
        "history_rows": history_rows,
        "first_id": first_id,
        "last_id": first_id + count - 1,
        "generate_s": round(generated, 1),
        "load_payments_s": round(payments_s, 1),
        "load_history_s": round(history_s, 1),
        "load_notifications_s": round(notifications_s, 1) if notifications else None,
        "total_s": round(total, 1),
        "rows_per_s": round((count + history_rows) / total),
        "created_from": _ts(start),
        "created_to": _ts(now),
    }


def _load_data(conn: pymysql.Connection, table: str, columns, path: str) -> float:
    """One LOAD DATA LOCAL INFILE of a whole table's rows; returns its seconds."""
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("SET SESSION unique_checks=0, foreign_key_checks=0")
        cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE {table} ({', '.join(columns)})", (path,))
        cur.execute("SET SESSION unique_checks=1, foreign_key_checks=1")
    return time.perf_counter() - started


def _load_rest(
    conn: pymysql.Connection, hist_path: str, notif_path: str, notifications: bool
) -> tuple[float, float]:
    try:
        history_s = _load_data(conn, "payment_status_history", HISTORY_COLUMNS, hist_path)
        notifications_s = (
            _load_data(conn, "notifications", NOTIFICATION_COLUMNS, notif_path)
            if notifications
            else 0.0
        )
    finally:
        conn.close()
    return history_s, notifications_s


def _reconnect(conn: pymysql.Connection) -> pymysql.Connection:
    """A second connection to the same database, with LOAD DATA LOCAL allowed."""
    db = conn.db.decode() if isinstance(conn.db, bytes) else conn.db
    return pymysql.connect(
        host=conn.host,
        port=conn.port,
        user=conn.user,
        password=conn.password,
        database=db,
        local_infile=True,
        autocommit=True,
        charset="utf8mb4",
    )
