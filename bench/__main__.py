"""`python -m bench [--quick] [--only a,b] [--keep]`: the PayBridge benchmark (issue 7).

Starts its own stack (MariaDB database pb_bench, Redis db 12, emulator, gunicorn with the
Procfile's worker model, RQ worker, notification receiver), runs the scenarios, prints a table,
writes JSON to bench/results/, and stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

from bench.report import FIGURES, audit_mark, cell
from bench.scenarios import FULL, QUICK, SCENARIOS, Context
from bench.stack import ROOT, Stack, log, procfile_web_args

RESULTS = ROOT / "bench" / "results"


def machine() -> dict:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "?",
    )
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    maria = subprocess.run(
        [
            "mysql",
            "-h127.0.0.1",
            "-uroot",
            "-N",
            "-e",
            "select @@version, @@innodb_buffer_pool_size",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gb": round(int(mem) / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "mariadb": maria[0] if maria else None,
        "innodb_buffer_pool_mb": int(maria[1]) // 1048576 if len(maria) > 1 else None,
        "loadavg_at_start": os.getloadavg(),
    }


def table(results: list[dict]) -> str:
    cols = ("thru/s", "p50 ms", "p95 ms", "p99 ms", "errors", "xHz p99")
    head = f"{'scenario':46} " + " ".join(f"{c:>8}" for c in cols) + "  audit"
    lines = [head, "-" * len(head)]
    for r in results:
        figures = " ".join(f"{cell(r.get(key)):>8}" for key in FIGURES)
        lines.append(f"{r['scenario'][:46]:46} {figures}  {audit_mark(r)}")
        extra = {
            k: r[k]
            for k in (
                "elapsed_s",
                "backlog",
                "delivered",
                "projected_drain_s",
                "checked",
                "psp_calls",
                "max_calls_in_any_1s",
                "rows",
                "burst_seconds",
                "stored_once",
                "applied_once",
                "db_queries_during",
                "redis_commands_during",
                "memory_growth",
                "chunk_p50_ms",
                "lock",
                "purge",
                "note",
            )
            if k in r
        }
        if extra and not r["scenario"].startswith(("read ", "healthz")):
            lines.append(f"{'':4}{json.dumps(extra)[:400]}")
        if audit_mark(r) == "FAIL":
            lines.append(f"{'':4}audit: {'; '.join(r['audit']['problems'])[:300]}")
    return "\n".join(lines)


def start_profilers(stack: Stack, run_dir: Path, scenario: str) -> list:
    """py-spy (sampling, 100 Hz, GIL-holding and idle threads excluded) on each app process and
    the emulator (the PSP side sets the pace of some scenarios)."""
    pyspy = str(ROOT / "bench" / ".venv" / "bin" / "py-spy")
    targets = [(f"web{i}", pid) for i, pid in enumerate(stack.web_worker_pids())]
    targets += [
        (n, p.popen.pid) for n, p in stack.procs.items() if n.startswith(("worker", "emulator"))
    ]
    spies = []
    for label, pid in targets:
        out = run_dir / f"profile-{scenario}-{label}.txt"
        spies.append(
            subprocess.Popen(
                [
                    pyspy,
                    "record",
                    "--pid",
                    str(pid),
                    "--format",
                    "raw",
                    "--rate",
                    "100",
                    "--gil",
                    "--nonblocking",
                    "-o",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    return spies


def stop_profilers(spies: list) -> None:
    import signal

    for spy in spies:
        if spy.poll() is None:
            os.killpg(spy.pid, signal.SIGINT)
    for spy in spies:
        try:
            spy.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(spy.pid, signal.SIGKILL)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small scale, a couple of minutes")
    parser.add_argument("--only", help=f"comma-separated subset of: {','.join(SCENARIOS)}")
    parser.add_argument("--keep", action="store_true", help="keep the pb_bench database")
    parser.add_argument("--web-threads", type=int, help="override gunicorn --threads (experiment)")
    parser.add_argument("--web-workers", type=int, help="override gunicorn --workers (experiment)")
    parser.add_argument(
        "--workers",
        type=int,
        default=4,
        help="RQ worker processes (default 4: two per core, see the README, Operating)",
    )
    parser.add_argument("--soak-seconds", type=float, help="override the soak duration")
    parser.add_argument("--env", action="append", default=[], help="extra NAME=VALUE for the app")
    parser.add_argument(
        "--db-url-args",
        default="",
        help="extra DATABASE_URL query arguments, e.g. ssl_disabled=1 (experiment)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a profile size, e.g. --set create_seconds=10",
    )
    parser.add_argument("--label", default="", help="a tag for the JSON file name")
    parser.add_argument(
        "--innodb-buffer-pool-mb",
        type=int,
        default=2048,
        help="InnoDB buffer pool for the run, restored afterwards (holds the 1M-row data set)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy each web and RQ worker during every scenario (raw stacks)",
    )
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL
    if args.soak_seconds:
        profile.soak_seconds = args.soak_seconds
    for item in args.set:
        key, value = item.split("=", 1)
        setattr(profile, key, type(getattr(profile, key))(float(value)))
    names = args.only.split(",") if args.only else list(SCENARIOS)
    if "healthz" not in names:
        names.insert(0, "healthz")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = RESULTS / f"{stamp}-{profile.name}{'-' + args.label if args.label else ''}"
    stack = Stack(
        run_dir, extra_env=dict(e.split("=", 1) for e in args.env), db_url_args=args.db_url_args
    )
    web = procfile_web_args(stack.web_port)
    for flag, value in (("--threads", args.web_threads), ("--workers", args.web_workers)):
        if value:
            web[web.index(flag) + 1] = str(value)
    stack.web_args = web
    ctx = Context(stack=stack, profile=profile)
    pool_before = stack.set_buffer_pool(args.innodb_buffer_pool_mb)
    log(f"InnoDB buffer pool {args.innodb_buffer_pool_mb} MB for the run (was {pool_before} MB)")
    report = {
        "profile": profile.__dict__,
        "machine": machine(),
        "web_command": " ".join(web[1:]),
        "rq_workers": args.workers,
        "extra_env": stack.extra_env,
        "database_url": stack.database_url,
        "scenarios": names,
        "started": stamp,
    }
    t0 = time.monotonic()
    rc = 0
    try:
        log(f"starting the stack (logs in {run_dir}/logs)")
        stack.start(workers=args.workers)
        notify = f"{stack.recv_url}/notify"
        shops = [
            ["Bench Shop", notify],
            ["Backlog Shop", notify],
            ["Volume Shop", ""],
            ["Other Volume Shop", ""],
        ]
        (
            ctx.merchant,
            ctx.backlog_merchant,
            ctx.volume_merchant,
            ctx.other_volume_merchant,
        ) = stack.appctl("setup", "--merchants", json.dumps(shops))
        report["memory_at_start_mb"] = stack.memory()
        for name in names:
            log(f"scenario {name}")
            started = time.monotonic()
            spies = start_profilers(stack, run_dir, name) if args.profile else []
            counters = ("Connections", "Questions")
            before, n_before = stack.global_status(*counters), len(ctx.results)
            cpu0, wall0 = stack.cpu(), time.monotonic()
            try:
                SCENARIOS[name](ctx)
            except Exception as exc:
                rc = 1
                log(f"scenario {name} crashed: {exc}")
                ctx.results.append({"scenario": f"{name} CRASHED", "error": traceback.format_exc()})
            stop_profilers(spies)
            after = stack.global_status(*counters)
            cpu1, wall = stack.cpu(), time.monotonic() - wall0
            cpu = {k: round(cpu1[k] - cpu0.get(k, 0.0), 2) for k in cpu1}
            sent = sum(
                e.get("sent", 0) + e.get("warmup_requests", 0) for e in ctx.results[n_before:]
            )
            for entry in ctx.results[n_before:]:
                entry["db_server_during_scenario"] = {k: after[k] - before[k] for k in counters}
            if ctx.results[n_before:]:
                last = ctx.results[-1]
                last["cpu_s_during_scenario"] = cpu
                last["scenario_wall_s"] = round(wall, 1)
                if sent:
                    last["web_cpu_ms_per_request"] = round(1000 * cpu.get("web", 0) / sent, 2)
            log(f"scenario {name} took {time.monotonic() - started:.0f}s")
        report["memory_at_end_mb"] = stack.memory()
    finally:
        stack.stop_all()
        if not args.keep:
            stack.drop_database()
        stack.set_buffer_pool(pool_before)  # the machine's server, as it was
    report["results"] = ctx.results
    report["explain"] = ctx.explains
    report["explain_warnings"] = ctx.explain_warnings
    report["traces"] = ctx.traces
    report["total_s"] = round(time.monotonic() - t0)
    out = run_dir / "results.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2, default=str))
    text = table(ctx.results)
    (run_dir / "table.txt").write_text(text + "\n")
    print(text)
    print(f"\nweb: {report['web_command']}; total {report['total_s']}s; JSON: {out}")
    if any(r.get("audit") and not r["audit"]["ok"] for r in ctx.results):
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
