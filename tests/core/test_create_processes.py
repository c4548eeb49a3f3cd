"""Exactly-once creation across several gunicorn worker processes (no shared memory at all)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app.models import Payment
from tests.support.api import auth_headers, create_body
from tests.support.concurrency import at_once
from tests.support.gunicorn import free_port, running_gunicorn
from tests.support.psp import checkout_sessions
from tests.support.rows import count_rows


@pytest.fixture
def gunicorn(app, emulator):
    """`gunicorn wsgi:app` with three workers on the test database and emulator."""
    port = free_port()
    env = dict(
        os.environ,
        PAYBRIDGE_ENV="testing",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        # The metrics test counts 60 keyless requests at once: not the address's rate limit.
        API_RATE_LIMIT_ANONYMOUS_PER_SECOND="1000",
    )
    with running_gunicorn(env, port=port, workers=3) as url:
        yield url


@pytest.mark.slow
def test_twenty_concurrent_creates_on_three_processes_make_one_payment(
    app, gunicorn, make_merchant, emu
):
    _, key = make_merchant("Multi-process shop")

    def create() -> requests.Response:
        return requests.post(
            f"{gunicorn}/api/v1/payments",
            json=create_body(merchant_reference="mp-1"),
            headers=auth_headers(key, "multi-process-1"),
            timeout=60,
        )

    results = at_once([create] * 20, timeout=90)

    statuses = [r.status_code for r in results]
    assert len(results) == 20 and all(s in (201, 409) for s in statuses), statuses
    ok = [r.json() for r in results if r.status_code == 201]
    assert ok and len({p["id"] for p in ok}) == 1
    assert all(p["status"] == "INITIATED" and p["checkout_url"] for p in ok)
    for r in results:
        if r.status_code == 409:
            assert r.json()["error"]["code"] == "REQUEST_IN_PROGRESS"
    assert count_rows(app, Payment) == 1
    assert len(checkout_sessions(emu)) == 1


def _requests_counted(metrics_text: str, route: str) -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("paybridge_http_requests_total{") and f'route="{route}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_the_requests_of_every_worker_process(gunicorn):
    """Whichever of the three workers answers a scrape, it reports all of them together."""

    def slow_401(_):  # concurrent, so the three workers each take some; each counts its 401
        return requests.get(f"{gunicorn}/api/v1/payments", timeout=10).status_code

    with ThreadPoolExecutor(10) as pool:
        assert list(pool.map(slow_401, range(60))) == [401] * 60
        scrapes = list(
            pool.map(lambda _: requests.get(f"{gunicorn}/metrics", timeout=10), range(9))
        )
    assert all(s.status_code == 200 for s in scrapes)
    assert [_requests_counted(s.text, "/api/v1/payments") for s in scrapes] == [60.0] * 9
    # Answered from the files of every process, not one process's memory (whose registry
    # carries that process's own python_gc_* series): one worker taking all 60 proves nothing.
    assert not any("python_gc_objects_collected_total" in s.text for s in scrapes)
