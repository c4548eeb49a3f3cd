"""Render a results.json as Markdown: `python -m bench.report [bench/results/latest.json]`.

Prints the scenario table, the per-request cost (web CPU, SQL statements), memory, and the
EXPLAIN of every dashboard/API read query — the material of docs/performance.md.
"""

from __future__ import annotations

import json
import sys


def _v(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def scenario_table(results: list[dict]) -> list[str]:
    out = [
        "| scenario | throughput /s | p50 ms | p95 ms | p99 ms | errors | p99 × healthz | audit |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        audit = r.get("audit")
        mark = "" if audit is None else ("ok" if audit["ok"] else "**FAIL**")
        out.append(
            f"| {r['scenario']} | {_v(r.get('throughput'))} | {_v(r.get('p50_ms'))} | "
            f"{_v(r.get('p95_ms'))} | {_v(r.get('p99_ms'))} | {_v(r.get('errors'))} | "
            f"{_v(r.get('x_healthz_p99'))} | {mark} |"
        )
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


def traces(items: list[dict]) -> list[str]:
    out = []
    for t in items:
        out.append(f"- **{t['name']}** → {t['status']}, {t['queries']} SQL statements (+ commits)")
    return out


def render(report: dict) -> str:
    lines = [
        f"Run {report['started']} ({report['profile']['name']}), {report['total_s']} s, "
        f"web: `{report['web_command']}`, RQ workers: {report['rq_workers']}",
        "",
    ]
    lines += scenario_table(report["results"]) + [""]
    lines += ["Per-scenario detail:", ""] + details(report["results"]) + [""]
    if report.get("traces"):
        lines += ["SQL per request (traced in-process):", ""] + traces(report["traces"]) + [""]
    lines += [
        f"Memory at start (MB RSS): `{json.dumps(report.get('memory_at_start_mb'))}`",
        f"Memory at end (MB RSS): `{json.dumps(report.get('memory_at_end_mb'))}`",
        "",
    ]
    if report.get("explain"):
        lines += ["EXPLAIN of every read request's payments queries:", ""]
        lines += explain_table(report["explain"]) + [""]
    return "\n".join(lines)


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "bench/results/latest.json"
    print(render(json.load(open(path))))
