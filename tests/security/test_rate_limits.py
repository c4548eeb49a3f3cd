"""Issue 25: one client cannot use up everyone's capacity. /api/v1 counts each API key's
requests (reads and writes apart) in Redis, shared by every process, and answers 429
RATE_LIMITED with Retry-After past the key's limit; every counted answer carries the
X-RateLimit-* headers; requests without a valid key are limited per client address; a merchant
may have its own limits; while Redis is unreachable the limits let requests through.

A limit counts per one-second window, so no test counts on its requests falling into one
window: each sends until the limit shows, or compares answers that name the same window
(X-RateLimit-Reset)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest
import requests

from tests.support.api import auth_headers, create_body
from tests.support.apps import app_with_env
from tests.support.gunicorn import free_port, running_gunicorn
from tests.support.waiting import wait_until

MAX_TRIES = 200


def until_limited(send: Callable[[], object], *, tries: int = MAX_TRIES):
    """Send until an answer is 429; (that answer, the answers before it)."""
    before = []
    for _ in range(tries):
        response = send()
        if response.status_code == 429:
            return response, before
        before.append(response)
    raise AssertionError(f"no 429 in {tries} requests: {[r.status_code for r in before][-10:]}")


def set_limits(runner, merchant_id: int, *options: str) -> str:
    result = runner.invoke(args=["merchants", "limits", str(merchant_id), *options])
    assert result.exit_code == 0, result.output
    return result.output


def assert_rate_headers(response, limit: int) -> None:
    headers = response.headers
    assert headers["X-RateLimit-Limit"] == str(limit)
    assert 0 <= int(headers["X-RateLimit-Remaining"]) < limit
    assert int(headers["X-RateLimit-Reset"]) > 1_700_000_000  # unix seconds


def test_a_key_over_its_limit_gets_429_with_retry_after_and_the_headers(
    client, make_merchant, runner
):
    merchant, key = make_merchant("Busy shop")
    set_limits(runner, merchant.id, "--read", "3")

    limited, before = until_limited(
        lambda: client.get("/api/v1/payments", headers=auth_headers(key))
    )

    assert all(r.status_code == 200 for r in before) and len(before) >= 3
    assert limited.json == {
        "error": {"code": "RATE_LIMITED", "message": limited.json["error"]["message"]}
    }
    assert "3 per second per API key" in limited.json["error"]["message"]
    assert int(limited.headers["Retry-After"]) >= 1
    assert_rate_headers(limited, 3)
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert_rate_headers(before[0], 3)


def test_the_merchants_own_limit_overrides_the_default_and_only_for_it(
    app, client, make_merchant, runner
):
    own, own_key = make_merchant("Own limits")
    other, other_key = make_merchant("Default limits")

    output = set_limits(runner, own.id, "--read", "7", "--write", "4")

    assert "reads : 7/s per API key (merchant's own)" in output
    assert "writes: 4/s per API key (merchant's own)" in output
    assert (
        client.get("/api/v1/payments", headers=auth_headers(own_key)).headers["X-RateLimit-Limit"]
        == "7"
    )
    assert (
        client.post("/api/v1/payments", json={}, headers=auth_headers(own_key)).headers[
            "X-RateLimit-Limit"
        ]
        == "4"
    )
    default = app.config["API_RATE_LIMIT_READ_PER_SECOND"]
    assert default == 100
    assert client.get("/api/v1/payments", headers=auth_headers(other_key)).headers[
        "X-RateLimit-Limit"
    ] == str(default)
    # Back to the default.
    output = set_limits(runner, own.id, "--read", "default")
    assert "reads : 100/s per API key (default)" in output
    assert (
        client.get("/api/v1/payments", headers=auth_headers(own_key)).headers["X-RateLimit-Limit"]
        == "100"
    )


def test_the_cli_refuses_a_limit_that_is_not_a_positive_number(runner, make_merchant):
    merchant, _ = make_merchant("Shop")
    result = runner.invoke(args=["merchants", "limits", str(merchant.id), "--read", "0"])
    assert result.exit_code != 0 and "whole number of requests per second" in result.output


def test_every_answer_carries_the_headers_errors_included(client, make_merchant):
    _, key = make_merchant("Shop")
    answers = [
        client.get("/api/v1/payments", headers=auth_headers(key)),
        client.get("/api/v1/payments/pay_doesnotexist", headers=auth_headers(key)),
        client.post("/api/v1/payments", json={"amount": -1}, headers=auth_headers(key)),
        client.get("/api/v1/payments"),  # no key: the address's limit
    ]
    assert [r.status_code for r in answers] == [200, 404, 400, 401]
    for response in answers[:3]:
        assert_rate_headers(response, 100)
    assert_rate_headers(answers[3], 10)


def test_reads_and_writes_count_apart(client, make_merchant, runner):
    merchant, key = make_merchant("Shop")
    set_limits(runner, merchant.id, "--write", "2")

    limited, _ = until_limited(
        lambda: client.post("/api/v1/payments", json={}, headers=auth_headers(key))
    )
    assert limited.json["error"]["code"] == "RATE_LIMITED"

    read = client.get("/api/v1/payments", headers=auth_headers(key))
    assert read.status_code == 200
    assert read.headers["X-RateLimit-Limit"] == "100"


def test_the_limit_is_the_keys_not_the_address(client, make_merchant, runner):
    """Two merchants behind one address (a shared egress): one's burst leaves the other alone."""
    busy, busy_key = make_merchant("Busy")
    _, calm_key = make_merchant("Calm")
    set_limits(runner, busy.id, "--read", "2")

    until_limited(lambda: client.get("/api/v1/payments", headers=auth_headers(busy_key)))

    assert client.get("/api/v1/payments", headers=auth_headers(calm_key)).status_code == 200


@pytest.fixture
def anonymous_limit(app):
    saved = app.config["API_RATE_LIMIT_ANONYMOUS_PER_SECOND"]
    app.config["API_RATE_LIMIT_ANONYMOUS_PER_SECOND"] = 2
    yield 2
    app.config["API_RATE_LIMIT_ANONYMOUS_PER_SECOND"] = saved


def test_requests_without_a_valid_key_are_limited_per_address(
    client, make_merchant, anonymous_limit
):
    _, key = make_merchant("Shop")
    bad = auth_headers("pbk_" + "x" * 43)

    limited, before = until_limited(lambda: client.get("/api/v1/payments", headers=bad))

    assert {r.status_code for r in before} == {401}
    assert limited.json["error"]["code"] == "RATE_LIMITED"
    assert "without an API key" in limited.json["error"]["message"]
    assert int(limited.headers["Retry-After"]) >= 1
    assert_rate_headers(limited, anonymous_limit)
    # A valid key from the same address counts on its own.
    assert client.get("/api/v1/payments", headers=auth_headers(key)).status_code == 200


def test_the_global_limits_are_the_settings_of_the_environment(app, make_merchant):
    """API_RATE_LIMIT_READ/WRITE_PER_SECOND set in the environment are every key's limits
    (a merchant without limits of its own), reads and writes apart."""
    _, key = make_merchant("Shop with the default limits")
    with app_with_env(
        API_RATE_LIMIT_READ_PER_SECOND="3", API_RATE_LIMIT_WRITE_PER_SECOND="2"
    ) as other:
        client = other.test_client()
        read_limited, reads = until_limited(
            lambda: client.get("/api/v1/payments", headers=auth_headers(key))
        )
        write_limited, writes = until_limited(
            lambda: client.post("/api/v1/payments", json={}, headers=auth_headers(key, "w"))
        )

    assert {r.status_code for r in reads} == {200} and len(reads) >= 3
    assert_rate_headers(reads[0], 3)
    assert "3 per second per API key" in read_limited.json["error"]["message"]
    assert_rate_headers(read_limited, 3)
    assert {r.status_code for r in writes} == {400} and len(writes) >= 2  # counted, errors too
    assert_rate_headers(writes[0], 2)
    assert "2 per second per API key" in write_limited.json["error"]["message"]
    assert_rate_headers(write_limited, 2)


# -- real processes ------------------------------------------------------------------------------


def _testing_env(port: int, **overrides: str) -> dict[str, str]:
    return dict(
        os.environ, PAYBRIDGE_ENV="testing", PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", **overrides
    )


@pytest.fixture
def two_servers(app, emulator):
    """Two `gunicorn wsgi:app` masters, separate processes sharing only MariaDB and Redis."""
    port_a, port_b = free_port(), free_port()
    with running_gunicorn(_testing_env(port_a), port=port_a) as a:
        with running_gunicorn(_testing_env(port_b), port=port_b) as b:
            yield a, b


@pytest.mark.slow
def test_two_processes_count_one_keys_requests_together(two_servers, make_merchant, runner):
    server_a, server_b = two_servers
    merchant, key = make_merchant("Shop on two servers")
    limit = 4
    set_limits(runner, merchant.id, "--read", str(limit))

    def get(server: str) -> requests.Response:
        return requests.get(f"{server}/api/v1/payments", headers=auth_headers(key), timeout=30)

    # The key's whole budget spent on server A, then one request on server B in the same
    # window: B refuses it. (Counting in each process, B would still have its own 4.)
    for _ in range(20):
        on_a = [get(server_a) for _ in range(limit)]
        on_b = get(server_b)
        windows = {int(r.headers["X-RateLimit-Reset"]) for r in [*on_a, on_b]}
        if len(windows) == 1:
            break
        # A window ended in between: try again from the start of a window no request touched.
        latest = max(windows)
        wait_until(lambda e=latest: time.time() >= e, what="the next window", timeout=5)
    else:
        pytest.fail("20 attempts, none within one one-second window")
    assert [r.status_code for r in on_a] == [200] * limit
    assert [int(r.headers["X-RateLimit-Remaining"]) for r in on_a] == [3, 2, 1, 0]
    assert on_b.status_code == 429
    assert on_b.json()["error"]["code"] == "RATE_LIMITED"
    assert int(on_b.headers["Retry-After"]) >= 1


@pytest.mark.slow
def test_with_redis_unreachable_the_limits_let_requests_through_logged_once(
    app, emu, make_merchant, runner, tmp_path
):
    merchant, key = make_merchant("Shop")
    set_limits(runner, merchant.id, "--read", "2")
    port = free_port()
    closed = "redis://127.0.0.1:1/0"
    env = _testing_env(port, RATELIMIT_STORAGE_URI=closed, REDIS_URL=closed)
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("w") as log, running_gunicorn(env, port=port, stderr=log) as url:
        answers = [
            requests.get(f"{url}/api/v1/payments", headers=auth_headers(key), timeout=30)
            for _ in range(20)
        ]
        created = requests.post(
            f"{url}/api/v1/payments",
            json=create_body(),
            headers=auth_headers(key, "no-redis-1"),
            timeout=30,
        )
        metrics = requests.get(f"{url}/metrics", timeout=30).text

    assert [r.status_code for r in answers] == [200] * 20
    assert not any("X-RateLimit-Limit" in r.headers for r in answers)
    # The create passed the API's limit and the PSP's create cap unchecked.
    assert created.status_code == 201, created.text
    assert unchecked(metrics, "api") == 21.0
    assert unchecked(metrics, "psp_create") == 1.0
    outages = [
        line.split("rate limit ", 1)[1].split(":")[0]
        for line in log_path.read_text().splitlines()
        if "storage unreachable (" in line
    ]
    assert sorted(outages) == ["api", "psp_create"], outages


def unchecked(metrics: str, limit: str) -> float:
    prefix = f'paybridge_rate_limit_unchecked_total{{limit="{limit}"}} '
    lines = metrics.splitlines()
    values = [float(line[len(prefix) :]) for line in lines if line.startswith(prefix)]
    assert values, f"no {prefix.strip()} in /metrics"
    return values[0]


def test_the_dashboard_shows_a_merchant_its_keys_limits(client_a, client_b, tenants, runner):
    set_limits(runner, tenants.a_id, "--read", "7", "--write", "4")

    own = client_a.get("/dashboard/api-keys").get_data(as_text=True)
    default = client_b.get("/dashboard/api-keys").get_data(as_text=True)

    assert "<strong>7</strong> reads and <strong>4</strong> writes per second" in own
    assert "this merchant's own limits" in own
    assert "<strong>100</strong> reads and <strong>100</strong> writes per second" in default
    assert "PayBridge's defaults" in default


# -- the outage's log and probe, on a fake clock -------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def outage_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "app.common.ratelimits"]


def test_an_outage_is_logged_when_it_starts_once_a_minute_and_when_it_ends(clock, caplog):
    from app.common.ratelimits import Outage

    caplog.set_level("WARNING", logger="app.common.ratelimits")
    outage = Outage("api", clock)

    outage.failed(ConnectionError("refused"))
    outage.passed_unchecked()
    for _ in range(59):  # a request a second for the rest of the first minute: no reminder
        clock.now += 1
        outage.passed_unchecked()
    assert len(outage_lines(caplog)) == 1
    assert "storage unreachable (ConnectionError)" in outage_lines(caplog)[0]

    clock.now += 1  # a minute after the first line
    outage.passed_unchecked()
    clock.now += 30
    outage.passed_unchecked()
    lines = outage_lines(caplog)
    assert len(lines) == 2
    assert "still unreachable; 61 requests passed unchecked in the last minute" in lines[1]

    clock.now += 30  # a minute after the reminder: the next one counts only its own minute
    outage.passed_unchecked()
    assert "still unreachable; 2 requests passed unchecked" in outage_lines(caplog)[2]

    clock.now += 5
    outage.answered()
    outage.answered()  # up again: said once
    lines = outage_lines(caplog)
    assert len(lines) == 4
    assert "answers again after 125 s (0 requests unchecked)" in lines[3]


def test_while_the_storage_is_down_one_request_at_a_time_probes_it(clock):
    """A storage that hangs costs its timeout to the request that probes it: the requests that
    arrive meanwhile skip it rather than each wait the timeout too."""
    from app.common.ratelimits import RETRY_STORAGE_SECONDS, Outage

    outage = Outage("psp_create", clock)
    assert outage.skip() is False  # up: every request asks the storage
    outage.failed(TimeoutError())
    assert outage.skip() is True

    clock.now += RETRY_STORAGE_SECONDS  # due: the first caller probes, the others skip
    assert outage.skip() is False
    assert [outage.skip() for _ in range(5)] == [True] * 5

    outage.failed(TimeoutError())  # the probe timed out: skip again until the next retry
    clock.now += RETRY_STORAGE_SECONDS / 2
    assert outage.skip() is True
    clock.now += RETRY_STORAGE_SECONDS / 2
    assert outage.skip() is False
    outage.answered()  # the probe answered: everyone asks again
    assert [outage.skip() for _ in range(3)] == [False] * 3
