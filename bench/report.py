"""Render a results.json as Markdown: `python -m bench.report [results.json] [--docs=PATH]`.

With --docs=docs/performance.md the run's machine, table, costs and verdicts replace the blocks
between `<!-- name -->` and `<!-- /name -->` in that file.

Prints the scenario table, the per-request cost (web CPU, SQL statements), memory, and the
EXPLAIN of every dashboard/API read query — the material of docs/performance.md.
"""

from __future__ import annotations

import json
import sys


def cell(value, digits: int = 1) -> str:
    """A figure as the tables show it: one decimal (or `digits`), a dash for none."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# A scenario's figures, in the order both its tables show them (the run's own on stdout, and
# the Markdown report's).
FIGURES = ("throughput", "p50_ms", "p95_ms", "p99_ms", "errors", "x_healthz_p99")


def audit_mark(result: dict, fail: str = "FAIL") -> str:
    audit = result.get("audit")
    return "" if audit is None else ("ok" if audit["ok"] else fail)


def scenario_table(results: list[dict]) -> list[str]:
    out = [
        "| scenario | throughput /s | p50 ms | p95 ms | p99 ms | errors | p99 × healthz | audit |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        figures = [cell(r.get(key)) for key in FIGURES]
        out.append("| " + " | ".join([r["scenario"], *figures, audit_mark(r, "**FAIL**")]) + " |")
    return out


def details(results: list[dict]) -> list[str]:
    keys = (
        "offered_rate",
        "sent",
        "elapsed_s",
        "statuses",
        "backlog",
        "delivered",
        "drained",
        "projected_drain_s",
        "checked",
        "corrected",
        "psp_calls",
        "calls_by_op",
        "psp_calls_per_s",
        "rate_cap_per_s",
        "max_calls_in_any_1s",
        "rows",
        "bytes",
        "rss_growth_mb_per_web_worker",
        "burst_seconds",
        "unique_events",
        "stored_once",
        "applied_once",
        "db_queries_during",
        "db_queries_idle_same_time",
        "redis_commands_during",
        "redis_commands_idle",
        "web_cpu_ms_per_request",
        "cpu_s_during_scenario",
        "db_server_during_scenario",
        "memory_growth",
        "p99_by_window",
        "note",
        "run_note",
    )
    out = []
    for r in results:
        picked = {k: r[k] for k in keys if r.get(k) not in (None, {}, [])}
        if picked:
            out.append(f"- **{r['scenario']}**: `{json.dumps(picked, default=str)}`")
        audit = r.get("audit")
        if audit:
            out.append(
                f"  - audit: {'ok' if audit['ok'] else '; '.join(audit['problems'])} — "
                f"`{json.dumps(audit['facts'], default=str)}`"
            )
    return out


def explain_table(explains: list[dict]) -> list[str]:
    out = [
        "| request | SQL statements | table | type | key | rows | extra |",
        "|---|---:|---|---|---|---:|---|",
    ]
    for entry in explains:
        first = True
        for st in entry["statements"]:
            for plan in st["explain"]:
                out.append(
                    f"| {entry['name'] if first else ''} | {entry['queries'] if first else ''} | "
                    f"{plan.get('table')} | {plan.get('type')} | {plan.get('key')} | "
                    f"{plan.get('rows')} | {plan.get('Extra') or ''} |"
                )
                first = False
    return out


def explain_warnings(report: dict) -> list[str]:
    """The reads' requests not answered 200 and plans that scan, sort or read across
    merchants (`_warn_unindexed`), or that there were none."""
    found = report.get("explain_warnings") or []
    if not found:
        return ["No read request's plan scans a table, sorts, or reads across merchants."]
    return ["Plans to look at (scan, sort, index without the merchant, or not 200):", ""] + [
        f"- {w}" for w in found
    ]


def traces(items: list[dict]) -> list[str]:
    out = []
    for t in items:
        out.append(f"- **{t['name']}** → {t['status']}, {t['queries']} SQL statements (+ commits)")
    return out


def render(report: dict) -> str:
    lines = [
        f"Run {report['started']} ({report['profile']['name']}), {report['total_s']} s, "
        f"web: `{report['web_command']}`, worker processes: {report['rq_workers']}",
        "",
    ]
    lines += scenario_table(report["results"]) + [""]
    lines += ["Targets of issue 7:", ""] + verdict_table(report) + [""]
    lines += ["Per-scenario detail:", ""] + details(report["results"]) + [""]
    if report.get("traces"):
        lines += ["SQL per request (traced in-process):", ""] + traces(report["traces"]) + [""]
    lines += [
        f"Memory at start (MB RSS): `{json.dumps(report.get('memory_at_start_mb'))}`",
        f"Memory at end (MB RSS): `{json.dumps(report.get('memory_at_end_mb'))}`",
        "",
    ]
    if report.get("explain"):
        lines += ["EXPLAIN of the read requests' payments, history, refunds, disputes queries:", ""]
        lines += explain_table(report["explain"]) + [""]
        lines += explain_warnings(report) + [""]
    return "\n".join(lines)


def _find(results: list[dict], prefix: str) -> list[dict]:
    return [r for r in results if r["scenario"].startswith(prefix)]


def verdicts(report: dict) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for every target of issue 7 that this run measured."""
    res = report["results"]
    out: list[tuple[str, str, bool | None]] = []

    def add(target: str, measured: str, met: bool | None) -> None:
        out.append((target, measured, met))

    for r in _find(res, "create, PSP 0"):
        add(
            "create, PSP 0 ms: ≥ 500/s, p99 ≤ 100 ms, 0 errors",
            f"{r['throughput']}/s of {r['offered_rate']}/s offered, p99 {r['p99_ms']} ms, "
            f"{r['errors']} errors",
            r["throughput"] >= 500 and (r["p99_ms"] or 1e9) <= 100 and r["errors"] == 0,
        )
    for r in _find(res, "create, PSP ~300"):
        add(
            "create, PSP ≈300 ms: all of 100/s served, p99 ≤ 900 ms",
            f"{r['throughput']}/s of {r['offered_rate']}/s, p99 {r['p99_ms']} ms, "
            f"{r['errors']} errors",
            r["throughput"] >= 0.98 * r["offered_rate"]
            and (r["p99_ms"] or 1e9) <= 900
            and r["errors"] == 0,
        )
    for r in _find(res, "webhook ingest"):
        add(
            "webhooks: ≥ 800 events/s, p99 ≤ 50 ms",
            f"{r['throughput']}/s of {r['offered_rate']}/s, p99 {r['p99_ms']} ms",
            r["throughput"] >= 800 and (r["p99_ms"] or 1e9) <= 50,
        )
    for r in _find(res, "webhook burst"):
        once = r["stored_once"] == r["unique_events"] == r["applied_once"]
        add(
            "burst of 20,000 (30% dup) applied exactly once in ≤ 30 s",
            f"{r['sent']} in {r['burst_seconds']} s; {r['unique_events']} unique, stored "
            f"{r['stored_once']}, applied {r['applied_once']}",
            once and r["burst_seconds"] <= 30,
        )
    for r in _find(res, "webhook invalid"):
        add(
            "invalid signatures ≥ 3,000/s, no DB or Redis access",
            f"{r['throughput']}/s of {r['offered_rate']}/s; MariaDB statements during "
            f"{r.get('db_queries_during')} (idle {r.get('db_queries_idle_same_time')}), Redis "
            f"commands {r.get('redis_commands_during')} (idle {r.get('redis_commands_idle')})",
            r["throughput"] >= 3000,
        )
    for r in _find(res, "notifications, receiver 0 ms"):
        add(
            "notifications ≥ 1,000 deliveries/s at 0 ms, 4 worker processes (issue 28)",
            f"{r['throughput']}/s",
            r["throughput"] >= 1000,
        )
    for r in _find(res, "notifications, receiver 200 ms"):
        measured = r.get("drained") and r.get("backlog", 0) >= 50_000
        drain_s = r["elapsed_s"] if measured else r.get("projected_drain_50k_s")
        add(
            f"50,000 backlog at 200 ms drained ≤ 5 min ({r.get('workers')} worker(s))",
            f"{r['backlog']:,} drained in {drain_s} s ({r['throughput']}/s)"
            if measured
            else f"{r['throughput']}/s ⇒ 50,000 in {drain_s} s (projected)",
            (drain_s or 1e9) <= 300,
        )
    for alone, beside in zip(
        _find(res, "notifications, healthy endpoint at 0 ms, alone"),
        _find(res, "notifications, healthy endpoint at 0 ms, beside"),
        strict=False,
    ):
        slower = alone["throughput"] / max(beside["throughput"], 1e-9)
        add(
            "a hanging endpoint slows another's deliveries by ≤ 10% (issue 28)",
            f"{alone['throughput']}/s alone, {beside['throughput']}/s beside it "
            f"({(slower - 1) * 100:.1f}% slower)",
            slower <= 1.10,
        )
    for r in _find(res, "reconciliation"):
        settled = r.get("stale_settled_after_s")
        all_checked = r["checked"] >= r.get("stale_payments", 0)
        if settled is not None and all_checked:
            # Runs that record their passes: the stale payments are done after events + payments.
            measured = (
                f"all {r['checked']} settled after {settled} s (events + payments passes; "
                f"the wide pass then compared the sessions since the last run's watermark; "
                f"the run ended at {r['elapsed_s']} s)"
            )
            met = settled <= 120
        else:
            measured = (
                f"{r['checked']} checked in {r['elapsed_s']} s ⇒ all in "
                f"{r.get('projected_s_for_all')} s"
            )
            met = (r.get("projected_s_for_all") or 1e9) <= 120
        add(
            "10,000 stale payments at 150 ms ≤ 2 min within the rate cap",
            f"{measured}; max {r['max_calls_in_any_1s']} PSP calls in any 1 s "
            f"(cap {r['rate_cap_per_s']:g})",
            met and r["cap_respected"],
        )
    reads = [r for r in res if r["scenario"].startswith("read ")]
    lists = [
        r
        for r in reads
        if "payment page" not in r["scenario"] and "api payment" not in r["scenario"]
    ]
    if lists:
        worst = max(lists, key=lambda r: r["p95_ms"] or 0)
        add(
            "every list/filter/search p95 ≤ 100 ms",
            f"worst: {worst['scenario']} p95 {worst['p95_ms']} ms; "
            f"{sum(1 for r in lists if (r['p95_ms'] or 0) <= 100)}/{len(lists)} within",
            all((r["p95_ms"] or 1e9) <= 100 for r in lists),
        )
    for r in reads:
        if "payment page" in r["scenario"] or "api payment" in r["scenario"]:
            add(
                f"{r['scenario'][5:]} p95 ≤ 50 ms",
                f"p95 {r['p95_ms']} ms",
                (r["p95_ms"] or 1e9) <= 50,
            )
    for r in _find(res, "CSV export"):
        growth = max(r["rss_growth_mb_per_web_worker"].values() or [0])
        add(
            "CSV export ≥ 20,000 rows/s, flat memory",
            f"{r['rows']} rows at {r['throughput']} rows/s; web worker RSS +{growth} MB",
            r["throughput"] >= 20000 and growth <= 20,
        )
    for r in _find(res, "soak"):
        grow = {
            k: v for k, v in r["memory_growth"].items() if k.startswith(("web-worker", "worker"))
        }
        windows = [w["p99_ms"] for w in r.get("p99_by_window", [])]
        samples = r.get("memory_by_window") or []
        late = ""
        if len(samples) >= 3:  # the slope after the first half: growth that goes on, or settled
            mid, end = samples[len(samples) // 2], samples[-1]
            late_growth = {
                k: round(end[k] / mid[k] - 1, 3) for k in grow if mid.get(k) and end.get(k)
            }
            late = f", growth from {mid['at_s']} s to the end {json.dumps(late_growth)}"
        stable = bool(windows) and max(windows) <= 3 * max(min(windows), 50)
        add(
            "soak: 0 lost, 0 duplicated, memory growth ≤ 10%, p99 stable",
            f"audit {'ok' if r['audit']['ok'] else 'FAILED'}, {r['errors']} errors, growth "
            f"{json.dumps(grow)}{late}, p99 per window {windows}",
            r["audit"]["ok"]
            and r["errors"] == 0
            and all(v <= 0.10 for v in grow.values())
            and stable,
        )
    mem = report.get("memory_at_end_mb") or {}
    web = {k: v for k, v in mem.items() if k.startswith("web-worker")}
    wrk = {k: v for k, v in mem.items() if k.startswith("worker")}
    if web or wrk:
        add(
            "footprint: each web process ≤ 150 MB, worker ≤ 150 MB",
            f"web {json.dumps(web)}, worker {json.dumps(wrk)} (MB RSS at the end)",
            all(v <= 150 for v in [*web.values(), *wrk.values()]),
        )
    audits = [r for r in res if r.get("audit")]
    add(
        "invariants hold after every scenario",
        f"{sum(1 for r in audits if r['audit']['ok'])}/{len(audits)} audits ok",
        all(r["audit"]["ok"] for r in audits),
    )
    return out


def verdict_table(report: dict) -> list[str]:
    lines = ["| target | measured | met |", "|---|---|---|"]
    for target, measured, met in verdicts(report):
        lines.append(
            f"| {target} | {measured} | {'yes' if met else 'no' if met is False else '–'} |"
        )
    return lines


def machine_section(report: dict) -> list[str]:
    m = report["machine"]
    return [
        f"- {m['cores']} cores ({m['cpu']}), {m['mem_gb']} GB RAM, kernel {m['kernel']}, "
        f"Python {m['python']}, MariaDB {m['mariadb']} (InnoDB buffer pool "
        f"{m['innodb_buffer_pool_mb']} MB for the run, set by the bench), Redis, all on the same "
        "box as the load generator; load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}.",
        f"- web: `gunicorn {report['web_command']}` (the Procfile's worker model), "
        f"{report['rq_workers']} worker processes (`python worker.py --no-cron`: the notification "
        "pump, `NOTIFY_CONCURRENCY=64`, beside an RQ SimpleWorker), "
        "`PAYBRIDGE_ENV=development` with MariaDB and Redis, `LOG_LEVEL=INFO`, app defaults for "
        "pools (`DB_POOL_SIZE=10`, `DB_MAX_OVERFLOW=20`), Stripe SDK retries 2, timeout 10 s, "
        "recon cap `RECON_RATE_LIMIT_PER_SECOND=20`.",
        f"- `DATABASE_URL`: `{report.get('database_url')}`; extra env: "
        f"`{json.dumps(report.get('extra_env') or {})}`.",
        f"- profile `{report['profile']['name']}`: `{json.dumps(report['profile'])}`; "
        f"total wall time {report['total_s']} s.",
    ]


def costs_section(report: dict) -> list[str]:
    lines = [
        "| work | unit | web | worker | MariaDB | emulator | receiver | load generator |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]

    def put(name: str, unit: str, per: dict) -> None:
        lines.append(
            f"| {name} | {unit} | {cell(per.get('web'), 2)} | {cell(per.get('worker'), 2)} | "
            f"{cell(per.get('mariadbd (shared)'), 2)} | {cell(per.get('emulator'), 2)} | "
            f"{cell(per.get('receiver'), 2)} | {cell(per.get('bench (load generator)'), 2)} |"
        )

    for r in report["results"]:
        per = r.get("cpu_ms_per_request") or r.get("cpu_ms_per_delivery")
        if per:
            put(
                r["scenario"],
                "ms CPU / request" if "cpu_ms_per_request" in r else "ms CPU / delivery",
                per,
            )
        elif r.get("cpu_s_during_scenario") and r.get("sent"):
            n = r["sent"] + r.get("warmup_requests", 0)
            per = {k: 1000 * v / n for k, v in r["cpu_s_during_scenario"].items()}
            put(r["scenario"], "ms CPU / request", per)
    return lines


def _replace_block(text: str, name: str, body: list[str]) -> str:
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = begin + "\n" + "\n".join(body) + "\n" + end
    if end in text:
        start = text.index(begin)
        return text[:start] + block + text[text.index(end) + len(end) :]
    return text.replace(begin, block)


def fill_docs(report: dict, path: str) -> None:
    """Write this run's machine, table, costs and verdicts into docs/performance.md's blocks."""
    text = open(path).read()
    text = _replace_block(text, "machine", machine_section(report))
    body = [f"Run `{report['started']}`:", ""] + scenario_table(report["results"])
    body += ["", "<details><summary>Per-scenario detail (JSON excerpts)</summary>", ""]
    body += details(report["results"]) + ["", "</details>"]
    if report.get("traces"):
        body += ["", "SQL per request (traced in-process, `bench.appctl trace`):", ""]
        body += traces(report["traces"])
    if report.get("explain"):
        body += [
            "",
            "EXPLAIN of the `payments`, history, refunds and disputes queries each read "
            "request runs (`bench.appctl explain`, captured from the real request):",
            "",
        ]
        body += explain_table(report["explain"])
        body += [""] + explain_warnings(report)
    text = _replace_block(text, "table", body)
    text = _replace_block(text, "costs", costs_section(report))
    text = _replace_block(text, "verdicts", verdict_table(report))
    open(path, "w").write(text)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--docs=")]
    docs = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--docs=")]
    data = json.load(open(args[0] if args else "bench/results/latest.json"))
    if docs:
        fill_docs(data, docs[0])
    else:
        print(render(data))
