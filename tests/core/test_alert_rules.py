"""deploy/prometheus/alerts.yml: rules Prometheus loads, each well formed, and every metric they
name one that PayBridge really exports, read from the /metrics of a running web (gunicorn) and
worker, so a renamed metric cannot leave a rule that never fires."""

from __future__ import annotations

import os
import re
from pathlib import Path

import promql_parser
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.gunicorn import free_port, running_gunicorn
from tests.support.waiting import wait_until
from tests.support.worker_process import WorkerProcess

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
# Series Prometheus records itself for each scrape target, not exported by any application.
PROMETHEUS_OWN = {"up"}
# What the operator must hear about (issue 26): the metric each topic's rule has to read.
MUST_WATCH = {
    "payments stuck past their expiry": "paybridge_payments_overdue",
    "failing notifications": "paybridge_notification_deliveries_total",
    "reconciliation errors": "paybridge_recon_errors_total",
    "the breaker open": "paybridge_psp_circuit_opened_total",
    "webhook signature failures": "paybridge_webhook_rejected_total",
}
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}


def rules() -> list[dict]:
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    found = []
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"] and group["rules"]
        found.extend(group["rules"])
    return found


def selected_metrics(node) -> set[str]:
    """Every metric name a PromQL expression selects, from Prometheus' own parser's tree."""
    if isinstance(node, promql_parser.VectorSelector):
        names = {node.name} if node.name else set()
        return names | {
            m.value for m in node.matchers.matchers if m.name == "__name__"
        }  # `{__name__="…"}`
    if isinstance(node, promql_parser.MatrixSelector):
        return selected_metrics(node.vector_selector)
    if isinstance(node, promql_parser.BinaryExpr):
        return selected_metrics(node.lhs) | selected_metrics(node.rhs)
    if isinstance(node, promql_parser.AggregateExpr):
        return selected_metrics(node.expr) | (
            selected_metrics(node.param) if node.param is not None else set()
        )
    if isinstance(node, promql_parser.Call):
        return set().union(*(selected_metrics(arg) for arg in node.args))
    if isinstance(
        node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr
    ):
        return selected_metrics(node.expr)
    assert isinstance(node, promql_parser.NumberLiteral | promql_parser.StringLiteral), node
    return set()


def exported_names(text: str) -> set[str]:
    """Every series name a /metrics text offers: each family's samples' names, and a counter's
    `_total` and a histogram's `_bucket`/`_sum`/`_count`, which exist once it counts."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


def test_every_rule_is_well_formed_and_its_expression_parses():
    found = rules()
    names = [rule["alert"] for rule in found]
    assert len(names) == len(set(names)), "alert names repeat"
    for rule in found:
        assert set(rule) <= RULE_KEYS and {"alert", "expr", "labels", "annotations"} <= set(rule)
        assert re.fullmatch(r"PayBridge[A-Z][A-Za-z]+", rule["alert"]), rule["alert"]
        assert DURATION.match(rule.get("for", "0s")), rule
        assert rule["labels"]["severity"] in ("page", "ticket"), rule
        assert rule["annotations"]["summary"].strip() and rule["annotations"]["description"]
        promql_parser.parse(rule["expr"])  # raises on a syntax error


def test_the_rules_watch_what_an_operator_must_hear_about():
    watched = set().union(*(selected_metrics(promql_parser.parse(r["expr"])) for r in rules()))
    missing = {topic: name for topic, name in MUST_WATCH.items() if name not in watched}
    assert missing == {}


def test_every_metric_a_rule_names_is_exported_by_the_running_web_or_worker(app):
    environment = {**os.environ, "METRICS_TOKEN": "alert-rules-test-token-0123456789abcdefgh"}
    headers = {"Authorization": f"Bearer {environment['METRICS_TOKEN']}"}
    port = free_port()
    worker = WorkerProcess("--no-cron", "--metrics-port", str(port), **environment)
    try:
        with running_gunicorn(environment) as url:
            web = requests.get(f"{url}/metrics", headers=headers, timeout=10)

        def worker_metrics() -> str | None:
            try:
                answer = requests.get(
                    f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=5
                )
            except requests.ConnectionError:
                return None
            return answer.text if answer.status_code == 200 else None

        worker_text = wait_until(
            worker_metrics, what="the worker's /metrics", details=lambda: worker.output
        )
    finally:
        worker.kill()
    assert web.status_code == 200
    exported = exported_names(web.text) | exported_names(worker_text)

    unknown = {
        rule["alert"]: sorted(names - exported - PROMETHEUS_OWN)
        for rule in rules()
        if (names := selected_metrics(promql_parser.parse(rule["expr"])))
        - exported
        - PROMETHEUS_OWN
    }
    assert unknown == {}


@pytest.mark.parametrize(
    "expr, names",
    [
        ('sum(rate(a_total{x="1"}[5m])) / sum(rate(a_total[5m])) > 0.05', {"a_total"}),
        ("max by (s) (b) > 0 or absent(c) unless on() d", {"b", "c", "d"}),
        ('-(e offset 5m) + max_over_time(f[10m:1m]) and {__name__="g"}', {"e", "f", "g"}),
    ],
)
def test_the_metric_names_are_read_from_every_kind_of_expression(expr, names):
    assert selected_metrics(promql_parser.parse(expr)) == names
