"""A fast loader: N payments with their status history (and optionally outbox rows) straight into
MariaDB with LOAD DATA LOCAL INFILE, bypassing the app (a million rows in a few minutes, where the
ORM would take an hour). Rows look like the app's: same id formats, history versions, statuses.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import random
import string
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
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
    "failure_code failure_message refunded_amount created_at updated_at finalized_at "
    "refund_state failure_reason method_type card_brand card_last4"
).split()
# Of the SUCCESS payments, these shares are refunded in part and in full (refunded_amount and
# refund_state only: the lists and filters read them; no refund rows).
REFUNDED_PARTIAL, REFUNDED_FULL = 0.03, 0.01
# How the paid ones were paid, and why the failed ones failed (0018): drawn from a random
# stream of their own, so the rows' other values stay those of earlier runs.
METHODS = (("card", 0.85), ("sepa_debit", 0.1), ("ideal", 0.05))
BRANDS = ("visa", "mastercard", "amex")
FAILURE_REASONS = ("declined", "expired", "canceled_by_shopper", "canceled_by_merchant",
                   "rejected_by_psp")  # fmt: skip
HISTORY_COLUMNS = (
    "payment_id from_status to_status status_version source reason psp_event_id created_at"
).split()
# A loaded backlog is due only once `appctl release-notifications` says so: the worker's pump
# would otherwise start on the first rows while the rest still load.
HELD_UNTIL = datetime(2099, 1, 1)
# The generator's pipes hold 1 MB (Linux's default limit for an unprivileged F_SETPIPE_SZ)
# rather than 64 KB: fewer switches between the generator and the LOAD statements reading them.
F_SETPIPE_SZ = 1031
PIPE_BYTES = 1 << 20
NOTIFICATION_COLUMNS = (
    "public_id merchant_id payment_id event_type status_version payload status attempt_count "
    "next_attempt_at created_at updated_at"
).split()
# Each pipe the generator writes: the table its LOAD DATA fills, and the columns of its rows.
TARGETS = {
    "payments": ("payments", PAYMENT_COLUMNS),
    "history": ("payment_status_history", HISTORY_COLUMNS),
    "notif": ("notifications", NOTIFICATION_COLUMNS),
}


@dataclass(frozen=True)
class Batch:
    """What to load: `count` payments of a merchant created over the `span` before now, their
    statuses drawn with `status_weights`, and with `notifications` each final one's outbox row."""

    merchant_id: int
    count: int
    prefix: str  # of the merchant references: <prefix>-00000001
    span: timedelta
    status_weights: dict[str, float]
    notifications: bool = False
    seed: int = 7


def load(connect: Callable[..., pymysql.Connection], batch: Batch) -> dict:
    """Insert the batch's payments; returns ids and timings. `connect(**kw)` opens a connection
    to the database (the loader adds local_infile=True).

    A forked child generates the rows into named pipes while one LOAD DATA per table reads
    them, each on its own connection: generating (~15 s for 1M payments) overlaps loading
    instead of preceding it, and the tables load side by side on the server's cores.
    """
    now = datetime.now(UTC).replace(tzinfo=None)
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM payments")
        first_id = cur.fetchone()[0] + 1
    tables = {k: v for k, v in TARGETS.items() if batch.notifications or k != "notif"}
    tmp = tempfile.mkdtemp(prefix="pb_bench_load_")
    paths = {name: os.path.join(tmp, f"{name}.tsv") for name in tables}
    for path in paths.values():
        os.mkfifo(path)
    fork = multiprocessing.get_context("fork")
    results = fork.SimpleQueue()
    child = fork.Process(
        target=_generate_into, args=(paths, batch, first_id, now, results), daemon=True
    )
    t0 = time.perf_counter()
    child.start()
    try:
        with ThreadPoolExecutor(len(tables)) as pool:
            futures = {
                name: pool.submit(_load_separately, connect, table, columns, paths[name])
                for name, (table, columns) in tables.items()
            }
            done, _ = wait(futures.values(), return_when=FIRST_EXCEPTION)
            if any(future.exception() for future in done):
                _abandon(child, paths.values())
            seconds = {name: future.result() for name, future in futures.items()}
        child.join()
        if child.exitcode != 0:
            raise RuntimeError(f"the loader's generator failed (exit code {child.exitcode})")
        generated, history_rows = results.get()
    finally:
        _abandon(child, paths.values())
        for path in paths.values():
            os.unlink(path)
        os.rmdir(tmp)
    with conn.cursor() as cur:
        cur.execute("ANALYZE TABLE payments, payment_status_history")
        cur.fetchall()
    conn.close()
    total = time.perf_counter() - t0
    return {
        "payments": batch.count,
        "history_rows": history_rows,
        "first_id": first_id,
        "last_id": first_id + batch.count - 1,
        "generate_s": round(generated, 1),
        "load_payments_s": round(seconds["payments"], 1),
        "load_history_s": round(seconds["history"], 1),
        "load_notifications_s": round(seconds["notif"], 1) if batch.notifications else None,
        "total_s": round(total, 1),
        "rows_per_s": round((batch.count + history_rows) / total),
        "created_from": _ts(now - batch.span),
        "created_to": _ts(now),
    }


def _abandon(child, pipes) -> None:
    """After a failed LOAD: stop the generator and let every other LOAD see an end of input,
    whether it already waits on its pipe or opens it later."""
    if not child.is_alive():
        return
    child.terminate()
    child.join()
    for path in pipes:
        # Opening the pipe as a writer wakes a LOAD blocked opening it (it then reads the end
        # once this closes); an empty file in its place answers a LOAD that opens it later.
        writer = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        os.unlink(path)
        open(path, "w").close()
        time.sleep(0.05)  # a LOAD inside its open() of the pipe gets to see the writer
        os.close(writer)


def _method_and_reason(rng: random.Random, status: str) -> list:
    """(failure_reason, method_type, card_brand, card_last4) of one generated payment."""
    if status == "FAILED":
        return [rng.choice(FAILURE_REASONS), None, None, None]
    if status not in ("SUCCESS", "PENDING"):
        return [None, None, None, None]
    kinds, weights = zip(*METHODS, strict=True)
    kind = rng.choices(kinds, weights)[0]
    brand = rng.choice(BRANDS) if kind == "card" else None
    last4 = f"{rng.randint(0, 9999):04d}" if kind in ("card", "sepa_debit") else None
    return [None, kind, brand, last4]


def _generate_into(
    paths: dict[str, str], batch: Batch, first_id: int, now: datetime, results
) -> None:
    """The child: write every row to its table's pipe; report (seconds, history rows)."""
    started = time.perf_counter()
    with (
        open(paths["payments"], "w", buffering=PIPE_BYTES) as pf,
        open(paths["history"], "w", buffering=PIPE_BYTES) as hf,
        open(paths.get("notif", os.devnull), "w", buffering=PIPE_BYTES) as nf,
    ):
        for pipe in (pf, hf, nf) if "notif" in paths else (pf, hf):
            fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, PIPE_BYTES)
        history_rows = _generate(pf, hf, nf, batch, first_id, now)
    results.put((time.perf_counter() - started, history_rows))


def _generate(pf, hf, nf, batch: Batch, first_id: int, now: datetime) -> int:
    merchant_id, count, prefix = batch.merchant_id, batch.count, batch.prefix
    rng = random.Random(batch.seed)
    # Their own streams: the rows drawn from `rng` stay what they were before refunds and
    # methods were loaded.
    refund_rng = random.Random(batch.seed + 1)
    method_rng = random.Random(batch.seed + 2)
    statuses = list(batch.status_weights)
    weights = list(batch.status_weights.values())
    start = now - batch.span
    history_rows = 0
    step = batch.span.total_seconds() / max(count, 1)
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
        refunded, refund_state = 0, None
        if status == "SUCCESS":
            draw = refund_rng.random()
            if draw < REFUNDED_FULL:
                refunded, refund_state = amount, "full"
            elif draw < REFUNDED_FULL + REFUNDED_PARTIAL:
                refunded, refund_state = max(1, amount // 3), "partial"
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
            refunded,
            _ts(created),
            _ts(times[-1]),
            _ts(final_at) if final_at else None,
            refund_state,
            *_method_and_reason(method_rng, status),
        ]
        pf.write(_tsv(row))
        prev = None
        for version, (to, at) in enumerate(zip(versions, times, strict=True), start=1):
            source = "api" if to in ("CREATED", "INITIATED") else "webhook"
            event = ("evt_" + _rid(rng)) if source == "webhook" else None
            hf.write(_tsv((pid, prev, to, version, source, None, event, _ts(at))))
            prev = to
            history_rows += 1
        if batch.notifications and status in FINAL:
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
    return history_rows


def _load_data(conn: pymysql.Connection, table: str, columns, path: str) -> float:
    """One LOAD DATA LOCAL INFILE of a whole table's rows; returns its seconds."""
    started = time.perf_counter()
    with conn.cursor() as cur:
        # A pipe can stay quiet longer than the server's default 30 s wait for the next
        # packet while the generator is held up writing another table's rows.
        cur.execute("SET SESSION unique_checks=0, foreign_key_checks=0, net_read_timeout=600")
        cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE {table} ({', '.join(columns)})", (path,))
        cur.execute("SET SESSION unique_checks=1, foreign_key_checks=1")
    return time.perf_counter() - started


def _load_separately(connect, table: str, columns, path: str) -> float:
    """`_load_data` on a connection of its own, allowed LOAD DATA LOCAL, closed afterwards."""
    own = connect(local_infile=True)
    try:
        return _load_data(own, table, columns, path)
    finally:
        own.close()
