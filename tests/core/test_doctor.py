"""`flask doctor`, which the release runs before migrating: the database server's version read
in every form MySQL and MariaDB give it, servers without SKIP LOCKED refused, and a warning
when the deployment's connections do not fit under the server's max_connections."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from app.extensions import db
from app.runtime.database_server import (
    ConnectionBudget,
    assess,
    connection_budget,
    parse_server_version,
)


@pytest.mark.parametrize(
    ("answer", "product", "number"),
    [
        ("10.11.6-MariaDB-0+deb12u1", "MariaDB", (10, 11, 6)),  # Debian 12
        ("11.4.2-MariaDB-log", "MariaDB", (11, 4, 2)),
        ("10.6.12-MariaDB", "MariaDB", (10, 6, 12)),
        ("5.5.5-10.6.12-MariaDB", "MariaDB", (10, 6, 12)),  # the mask old clients see
        ("10.5.23-MariaDB-1:10.5.23+maria~ubu2004", "MariaDB", (10, 5, 23)),
        ("8.0.36", "MySQL", (8, 0, 36)),
        ("8.0.36-0ubuntu0.22.04.1", "MySQL", (8, 0, 36)),
        ("8.4.3-commercial", "MySQL", (8, 4, 3)),
        ("8.0.1-dmr-log", "MySQL", (8, 0, 1)),
        ("5.7.44-log", "MySQL", (5, 7, 44)),
        ("9.1", "MySQL", (9, 1, 0)),
    ],
)
def test_the_servers_version_is_read_in_every_form(answer, product, number):
    version = parse_server_version(answer)
    assert (version.product, version.number, version.text) == (product, number, answer)


def test_a_version_without_a_number_is_refused_by_name():
    with pytest.raises(ValueError, match="cannot read a version number in the server's 'TiDB'"):
        parse_server_version("TiDB")


ROOMY = ConnectionBudget(1, 8, 1, 5, 1)  # 13 connections


@pytest.mark.parametrize(
    ("answer", "refused"),
    [
        ("10.5.23-MariaDB", True),
        ("10.6.0-MariaDB", False),
        ("5.7.44-log", True),
        ("8.0.0-dmr", True),
        ("8.0.1-dmr", False),
        ("8.4.3", False),
    ],
)
def test_servers_without_skip_locked_are_refused(answer, refused):
    found = assess(parse_server_version(answer), ROOMY, max_connections=151)
    assert bool(found.refusals) is refused
    if refused:
        assert "MariaDB 10.6+ or MySQL 8.0.1+" in found.refusals[0]
        assert answer in found.refusals[0]


def test_a_mysql_that_ignores_check_constraints_is_warned_about():
    found = assess(parse_server_version("8.0.15"), ROOMY, max_connections=151)
    assert found.refusals == [] and "CHECK constraints" in found.warnings[0]


def test_the_budget_counts_threads_per_process_within_its_pool():
    settings = {
        "WEB_PROCESSES": 8,
        "WEB_THREADS": 8,
        "WORKER_PROCESSES": 4,
        "WORKER_CONCURRENCY": 4,
        "DEPLOY_HOSTS": 2,
        "DB_POOL_SIZE": 10,
        "DB_MAX_OVERFLOW": 20,
    }
    assert connection_budget(settings).total == 2 * (8 * 8 + 4 * 5)  # the README's 2-core box
    # A process never holds more than its pool, however many threads it runs.
    settings |= {"WEB_THREADS": 64, "DB_POOL_SIZE": 5, "DB_MAX_OVERFLOW": 5}
    assert connection_budget(settings).total == 2 * (8 * 10 + 4 * 5)


def test_a_budget_over_either_limit_of_the_server_is_a_warning_not_a_refusal():
    version = parse_server_version("10.11.6-MariaDB")
    assert assess(version, ROOMY, max_connections=13).warnings == []
    over_server = assess(version, ROOMY, max_connections=12)
    assert over_server.refusals == []
    assert (
        "open 13 connections at once, over the server's max_connections of 12"
        in (over_server.warnings[0])
    )
    over_user = assess(version, ROOMY, max_connections=151, max_user_connections=10)
    assert "max_user_connections of 10" in over_user.warnings[0]


# --- the command, against the suite's MariaDB ----------------------------------------------------


def _server(app) -> tuple[str, int]:
    with app.app_context():
        return tuple(db.session.execute(text("SELECT VERSION(), @@max_connections")).one())


def test_doctor_passes_the_suites_mariadb_and_shows_the_budget(app, runner):
    version, max_connections = _server(app)

    result = runner.invoke(args=["doctor"])

    assert result.exit_code == 0, result.output
    assert f"({version})" in result.output
    assert f"PayBridge may open {connection_budget(app.config)}; the server allows " in (
        result.output
    )
    assert f"allows {max_connections}" in result.output
    assert "warning" not in result.output


def test_doctor_warns_when_the_deployment_would_exceed_max_connections(app, runner, monkeypatch):
    _, max_connections = _server(app)
    hosts = max_connections // connection_budget(app.config).per_host + 1
    monkeypatch.setitem(app.config, "DEPLOY_HOSTS", hosts)

    result = runner.invoke(args=["doctor"])

    assert result.exit_code == 0, result.output  # the release goes on: it is the operator's call
    assert f"over the server's max_connections of {max_connections}" in result.stderr
    assert "Raise max_connections, or lower WEB_PROCESSES" in result.stderr


def test_doctor_without_a_database_server_fails_saying_so(app, runner, monkeypatch):
    unreachable = create_engine("mysql+pymysql://pb@127.0.0.1:1/paybridge")
    with app.app_context():
        monkeypatch.setitem(db.engines, None, unreachable)

        result = runner.invoke(args=["doctor"])

    assert result.exit_code == 1
    assert "cannot ask the database server" in result.output
    assert "Connection refused" in result.output
