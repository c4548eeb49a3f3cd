"""Each worker process serves its own /metrics (WORKER_METRICS_PORT), so a worker on another host
than gunicorn is scraped too: behind METRICS_TOKEN like web's, counting the work that process
did; a port already taken costs the metrics, never the deliveries. Its log lines take
LOG_FORMAT's JSON shape, job lines carrying the job id."""

from __future__ import annotations

import json
import socket

import requests

from app.models import PaymentStatus
from app.tasks import get_queue
from app.tasks.maintenance import purge_old_records
from tests.support import factories
from tests.support.gunicorn import free_port
from tests.support.waiting import wait_until
from tests.support.worker_process import WorkerProcess

TOKEN = "worker-metrics-token-for-this-test-0123456789abcdef"


def scrape(port: int, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=5)


def answering(port: int) -> bool:
    try:
        return scrape(port).status_code in (200, 401)
    except requests.ConnectionError:
        return False


def test_the_worker_serves_its_own_metrics_behind_the_token_counting_its_deliveries(
    app, make_merchant, receiver
):
    merchant, _ = make_merchant(notify_url=receiver.url)
    port = free_port()
    worker = WorkerProcess("--no-cron", "--metrics-port", str(port), METRICS_TOKEN=TOKEN)
    try:
        wait_until(
            lambda: answering(port), what="the worker's /metrics", details=lambda: worker.output
        )
        factories.make_payment(app, merchant.id, PaymentStatus.SUCCESS)
        wait_until(
            lambda: receiver.requests,
            what="the delivery",
            timeout=30,
            details=lambda: worker.output,
        )

        for token in (None, "wrong", TOKEN[:-1]):
            refused = scrape(port, token)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "AUTHENTICATION_REQUIRED"
            assert refused.headers["WWW-Authenticate"].startswith("Bearer")
            assert "paybridge_" not in refused.text

        def delivered_counted() -> str | None:
            text = scrape(port, TOKEN).text
            return (
                text
                if 'paybridge_notification_deliveries_total{result="delivered"} 1.0' in text
                else None
            )

        text = wait_until(delivered_counted, what="the worker counting its delivery")
        assert "paybridge_notifications_due 0.0" in text  # read from the database at the scrape
        assert 'paybridge_payments_overdue{mode="live",status="INITIATED"} 0.0' in text
        other = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert other.status_code == 404
    finally:
        worker.kill()
    assert f"worker metrics at http://127.0.0.1:{port}/metrics" in worker.output


def test_a_metrics_port_already_taken_costs_the_metrics_not_the_deliveries(
    app, make_merchant, receiver
):
    merchant, _ = make_merchant(notify_url=receiver.url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = WorkerProcess("--no-cron", "--metrics-port", str(port))
        try:
            factories.make_payment(app, merchant.id, PaymentStatus.SUCCESS)
            wait_until(
                lambda: receiver.requests,
                what="the delivery",
                timeout=30,
                details=lambda: worker.output,
            )
        finally:
            worker.kill()
    assert f"worker metrics cannot listen on 127.0.0.1:{port}" in worker.output
    assert "--metrics-port" in worker.output


def test_with_json_logs_every_worker_line_is_a_json_object_and_job_lines_carry_the_job_id(app):
    with app.app_context():
        job = get_queue("default").enqueue(purge_old_records)
    worker = WorkerProcess("--burst", "--no-notifications", "--no-cron", LOG_FORMAT="json")
    assert worker.wait(60) == 0, worker.output

    lines = [json.loads(line) for line in worker.output.splitlines() if line.strip()]
    assert lines, worker.output
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
    purged = [line for line in lines if line["message"].startswith("retention: purged ")]
    assert len(purged) == 1, worker.output
    assert purged[0]["job_id"] == job.id
    assert purged[0]["logger"] == "app.retention.service"
