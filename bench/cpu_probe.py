"""`python -m bench.cpu_probe`: CPU per request of the create and webhook paths, in-process.

The load benchmark (`bench/run.sh`) measures gunicorn's CPU under load, which varies a lot
between quick runs on a small noisy machine. This probe sends the requests one after another
through Flask's test client and counts only this process's CPU (`time.process_time()`), so
before/after figures of a code change are comparable. The Stripe emulator runs in a subprocess
(its CPU is not counted); MariaDB and Redis are the real ones. Only public entry points are
used: `create_app`, the models `Merchant`/`ApiKey`, the HTTP routes, the emulator's HTTP API.

  create       POST /api/v1/payments, new reference and Idempotency-Key each
  webhook new  POST /webhooks/stripe, a signed checkout.session.completed of an INITIATED payment
  webhook dup  the same events again (already stored)
  charge new   (--charges) a signed charge.succeeded of each of those payments, after its
               session's event (so the figures above stay comparable): the method learned and
               the paid attempt recorded
  charge dup   (--charges) the same charge events again

`--log-format json --access-log on` measures with JSON lines and the access line per request
(the defaults: text, on); the lines are formatted as in production, then dropped.

`--instructions` counts the CPU instructions each request executes instead (valgrind's
callgrind, instrumenting only the measured loops): a figure that other load on the machine does
not move, for before/after comparisons on a busy machine. About 50 times slower: use it with
fewer requests (`--instructions --creates 100 --webhooks 100 --warmup 10 --repeat 1`).
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import pymysql
from redis import Redis

from bench import emulator, merchant
from bench.stack import BENCH_RATE_LIMITS, MYSQL, REDIS_BASE, ROOT
from stripe_emulator.testing import run_emulator

WEBHOOK_SECRET = "whsec_paybridge_cpu_probe"
FIGURES = ("create", "webhook_new", "webhook_duplicate", "charge_new", "charge_duplicate")


def recreate_database(name: str, create: bool = True) -> None:
    conn = pymysql.connect(**MYSQL, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        if create:
            cur.execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
    conn.close()


def make_app(emu, database: str, redis_url: str, log_format: str = "text", access_log: str = "on"):
    """The app as the tests build it, on a fresh database migrated by Alembic, and a merchant;
    its lines in `log_format`, with or without the access line per request."""
    os.environ.update(
        {
            "LOG_FORMAT": log_format,
            "ACCESS_LOG": "1" if access_log == "on" else "0",
            "DATABASE_URL": f"mysql+pymysql://{MYSQL['user']}@{MYSQL['host']}:{MYSQL['port']}/"
            f"{database}?charset=utf8mb4",
            "REDIS_URL": redis_url,
            "RATELIMIT_STORAGE_URI": redis_url,
            "STRIPE_API_BASE": emu.url,
            "STRIPE_TEST_SECRET_KEY": emu.api_key,
            "STRIPE_TEST_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "LOG_LEVEL": "INFO",
            **BENCH_RATE_LIMITS,  # on, and out of the way (bench/README)
        }
    )
    from flask_migrate import upgrade

    from app import create_app
    from app.models import ApiKey, Merchant, NotificationEndpoint
    from app.notifications.event_types import LEGACY_EVENT_TYPES

    app = create_app("testing")
    # Log lines are formatted as in production (part of the cost) but not shown.
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))
    db = app.extensions["sqlalchemy"]
    with app.app_context():
        upgrade()
        merchant = Merchant(name="CPU probe")
        key, raw = ApiKey.generate(merchant)
        db.session.add_all([merchant, key])
        db.session.flush()
        # As migration 0022 makes a notify_url: one endpoint receiving today's types.
        db.session.add(
            NotificationEndpoint(
                merchant_id=merchant.id,
                url="http://127.0.0.1:9/notify",
                event_types=list(LEGACY_EVENT_TYPES),
            )
        )
        db.session.commit()
    return app, raw


def create_requests(api_key: str, tag: str, n: int) -> list[tuple[bytes, dict]]:
    """Bodies and headers built ahead, so the measured loop holds little but the app's work."""
    reqs = [merchant.create_payment(api_key, f"{tag}-{i}", i, tag) for i in range(n)]
    return [(body, headers) for headers, body in reqs]


def webhook_requests(bodies: list[bytes]) -> list[tuple[bytes, dict]]:
    """Each body signed as Stripe signs it."""
    t = int(time.time())
    return [
        (
            body,
            {
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": emulator.stripe_signature(body, WEBHOOK_SECRET, t),
            },
        )
        for body in bodies
    ]


# Set (to callgrind's output folder) when this process runs under valgrind for --instructions.
CALLGRIND_DIR = os.environ.get("PAYBRIDGE_PROBE_CALLGRIND")


def _callgrind(*command: str) -> None:
    subprocess.run(
        ["callgrind_control", *command, str(os.getpid())], check=True, stdout=subprocess.DEVNULL
    )


def _instructions_dumped() -> int:
    """The instruction total of callgrind's newest dump of this process."""
    dumps = glob.glob(os.path.join(CALLGRIND_DIR, f"probe.{os.getpid()}.out.*"))
    newest = max(dumps, key=lambda path: int(path.rsplit(".", 1)[1]))
    with open(newest) as dump:
        return next(int(line.split()[1]) for line in dump if line.startswith("totals:"))


def post_all(client, path: str, reqs: list, ok: int) -> tuple[list, dict]:
    """POST each request; return the responses and the CPU and wall ms (and, under callgrind,
    the instructions) per request."""
    gc.collect()  # garbage of the set-up is not the requests'
    if CALLGRIND_DIR:
        _callgrind("--zero")
        _callgrind("--instr=on")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    responses = [client.post(path, data=body, headers=headers) for body, headers in reqs]
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    instructions = None
    if CALLGRIND_DIR:
        _callgrind("--instr=off")
        _callgrind("--dump")
        instructions = _instructions_dumped()
    bad = [r for r in responses if r.status_code != ok]
    if bad:
        raise SystemExit(
            f"{path}: {len(bad)} of {len(reqs)} answered not {ok}; first: "
            f"{bad[0].status_code} {bad[0].get_data(as_text=True)[:300]}"
        )
    n = max(len(reqs), 1)
    figures = {"cpu_ms": 1000 * cpu / n, "wall_ms": 1000 * wall / n, "n": n}
    if instructions is not None:
        figures["instructions"] = instructions / n
    return responses, figures


def one_round(client, emu, api_key: str, args, tag: str) -> dict:
    create = "/api/v1/payments"
    post_all(client, create, create_requests(api_key, f"{tag}-warm", args.warmup), 201)
    made, figures = [], {}
    responses, figures["create"] = post_all(
        client, create, create_requests(api_key, tag, args.creates), 201
    )
    made += responses
    # INITIATED payments for the webhooks: the measured creates' and, if short, more.
    more = args.webhooks + args.warmup - len(made)
    if more > 0:
        made += post_all(client, create, create_requests(api_key, f"{tag}-more", more), 201)[0]
    sids = [r.get_json()["psp_session_id"] for r in made][: args.webhooks + args.warmup]

    since = int(time.time()) - 2
    if emulator.pay_sessions(emu.url, sids):
        raise SystemExit("the emulator did not complete every session")
    events = emulator.completed_events(emu.url, emu.api_key, since, set(sids))
    if len(events) < len(sids):
        raise SystemExit(f"{len(sids) - len(events)} sessions have no checkout.session.completed")
    bodies = [json.dumps(events[s], indent=2).encode() for s in sids]
    intents = [events[s]["data"]["object"]["payment_intent"] for s in sids]
    warm, events = bodies[: args.warmup], bodies[args.warmup :]

    def measure(name: str, warm: list[bytes], events: list[bytes]) -> None:
        """`name`_new and `name`_duplicate: each event once (all applied), then again."""
        hook = "/webhooks/stripe"
        post_all(client, hook, webhook_requests(warm), 200)
        post_all(client, hook, webhook_requests(warm), 200)
        responses, figures[f"{name}_new"] = post_all(client, hook, webhook_requests(events), 200)
        outcomes = {r.get_json()["outcome"] for r in responses}
        if outcomes != {"applied"}:
            raise SystemExit(f"new {name} events were not all applied: {outcomes}")
        _, figures[f"{name}_duplicate"] = post_all(client, hook, webhook_requests(events), 200)

    measure("webhook", warm, events)
    if args.charges:
        charges = emulator.charge_events(emu.url, emu.api_key, since, set(intents))
        if len(charges) < len(intents):
            raise SystemExit(f"{len(intents) - len(charges)} intents have no charge.succeeded")
        bodies = [json.dumps(charges[i], indent=2).encode() for i in intents]
        measure("charge", bodies[: args.warmup], bodies[args.warmup :])
    return figures


def summary(rounds: list[dict]) -> dict:
    out = {}
    units = ("cpu_ms", "wall_ms", "instructions") if CALLGRIND_DIR else ("cpu_ms", "wall_ms")
    for name in (f for f in FIGURES if f in rounds[0]):
        for unit in units:
            values = [r[name][unit] for r in rounds]
            out.setdefault(name, {})[unit] = {
                "median": round(statistics.median(values), 3),
                "min": round(min(values), 3),
                "max": round(max(values), 3),
                "runs": [round(v, 3) for v in values],
            }
    return out


def print_table(result: dict) -> None:
    if CALLGRIND_DIR:
        print(f"\n{'path':<18} {'instructions/request':>22}  per run")
        for name in (f for f in FIGURES if f in result):
            counted = result[name]["instructions"]
            runs = " ".join(f"{v:,.0f}" for v in counted["runs"])
            print(f"{name:<18} {counted['median']:>22,.0f}  {runs}")
        return
    print(f"\n{'path':<18} {'ms CPU/request':>15} {'min-max':>14} {'wall ms':>8}  per run (CPU)")
    for name in (f for f in FIGURES if f in result):
        cpu, wall = result[name]["cpu_ms"], result[name]["wall_ms"]
        runs = " ".join(f"{v:.2f}" for v in cpu["runs"])
        spread = f"{cpu['min']:.2f}-{cpu['max']:.2f}"
        print(f"{name:<18} {cpu['median']:>15.2f} {spread:>14} {wall['median']:>8.2f}  {runs}")


def rerun_under_callgrind(argv: list[str]) -> None:
    """This same command again, in valgrind's callgrind with instrumentation off until a
    measured loop turns it on; its dumps go to a temporary folder, removed afterwards."""
    folder = tempfile.mkdtemp(prefix="paybridge-probe-callgrind-")
    command = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", "--trace-children=no",
        f"--callgrind-out-file={folder}/probe.%p.out",
        sys.executable, "-m", "bench.cpu_probe", *argv,
    ]  # fmt: skip
    try:
        status = subprocess.run(
            command, env={**os.environ, "PAYBRIDGE_PROBE_CALLGRIND": folder}, cwd=ROOT
        ).returncode
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    raise SystemExit(status)


def _said(name: str, figures: dict) -> str:
    if "instructions" in figures:
        return f"{name} {figures['instructions']:,.0f} instructions"
    return f"{name} {figures['cpu_ms']:.2f} ms CPU"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.cpu_probe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--creates", type=int, default=600, help="measured creates per run")
    p.add_argument("--webhooks", type=int, default=1000, help="measured new (and duplicate) events")
    p.add_argument("--warmup", type=int, default=50, help="unmeasured requests of each kind first")
    p.add_argument("--repeat", type=int, default=3, help="runs; the table shows their median")
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--database", default="pb_cpu_probe", help="MariaDB database, dropped after")
    p.add_argument("--redis-db", type=int, default=9, help="flushed before and after")
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="LOG_FORMAT of the measured app (lines are formatted, then dropped)",
    )
    p.add_argument(
        "--access-log",
        choices=("on", "off"),
        default="on",
        help="ACCESS_LOG of the measured app: one line per request",
    )
    p.add_argument(
        "--charges",
        action="store_true",
        help="also measure charge.succeeded events (new and duplicate), after the sessions'",
    )
    p.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per request under valgrind's callgrind (slow; steady under load)",
    )
    args = p.parse_args(argv)
    if args.instructions and not CALLGRIND_DIR:
        rerun_under_callgrind(sys.argv[1:] if argv is None else argv)

    started, load_before = time.perf_counter(), os.getloadavg()[0]
    redis_url = f"{REDIS_BASE}/{args.redis_db}"
    Redis.from_url(redis_url).flushdb()
    recreate_database(args.database)
    try:
        with run_emulator() as emu:  # a subprocess: its CPU is not this process's
            emu.control("POST", "deliveries/pause")  # only the probe's posts reach the app
            app, api_key = make_app(emu, args.database, redis_url, args.log_format, args.access_log)
            client = app.test_client()
            run = uuid.uuid4().hex[:6]
            rounds = []
            for i in range(args.repeat):
                rounds.append(one_round(client, emu, api_key, args, f"probe-{run}-{i}"))
                print(
                    f"run {i + 1}/{args.repeat}: "
                    + ", ".join(_said(k, v) for k, v in rounds[-1].items()),
                    flush=True,
                )
            with app.app_context():
                app.extensions["sqlalchemy"].engine.dispose()
    finally:
        recreate_database(args.database, create=False)
        Redis.from_url(redis_url).flushdb()

    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    result = {
        "commit": commit,
        "config": {
            k: getattr(args, k)
            for k in (
                "creates",
                "webhooks",
                "warmup",
                "repeat",
                "log_format",
                "access_log",
                "charges",
            )
        },
        "seconds": round(time.perf_counter() - started, 1),
        # CPU times are inflated when other processes share the cores: compare like with like.
        "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        **summary(rounds),
    }
    print_table(result)
    print(
        f"\n{args.repeat} runs in {result['seconds']} s, commit {commit}, "
        f"load average {result['loadavg_1min'][0]} -> {result['loadavg_1min'][1]}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
