"""The production kit in deploy/ runs what the Procfile says, with the settings it assumes.

The systemd units and the container image start each process through deploy/procfile-run,
which runs the Procfile's own line, so the commands live in one place; these tests hold the
units, the Dockerfile and the compose file to the Procfile's process names, to gunicorn's
address behind nginx, to the settings' defaults, and run procfile-run itself: the release on a
fresh MariaDB database, and the web as the very process a process manager signals.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import tomllib
from pathlib import Path

import pytest
import requests
import yaml
from sqlalchemy import create_engine, inspect

from app.config import Config, ConfigError, environment_variables, load_config
from app.runtime.database_server import SKIP_LOCKED_SINCE, parse_server_version
from tests.conftest import TEST_DATABASE, drop_database, mysql_url, recreate_database
from tests.support.gunicorn import ROOT, free_port
from tests.support.nginx import TEMPLATE
from tests.support.processes import stop_process
from tests.support.production import clear_settings, safe_production_settings
from tests.support.waiting import wait_until

DEPLOY = ROOT / "deploy"
PROCFILE_RUN = DEPLOY / "procfile-run"
SOURCE_TREE = "/srv/paybridge"  # where the units and the image keep the source tree
WEB_PORT = "8000"  # gunicorn's port behind nginx on a host and in compose


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def unit(name: str) -> dict[str, list[str]]:
    """A systemd unit's settings, each with every value it is given (Environment= repeats)."""
    found: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


UNITS = {
    "release": "paybridge-release.service",
    "web": "paybridge-web.service",
    "worker": "paybridge-worker@.service",
}


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def dockerfile() -> dict[str, list[str]]:
    """Each instruction of the Dockerfile with its arguments, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "docker" / "Dockerfile").read_text())
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            found.setdefault(instruction, []).append(rest.strip())
    return found


def test_a_unit_for_each_procfile_process_runs_its_line_through_procfile_run():
    assert set(UNITS) == set(procfile())
    for process, name in UNITS.items():
        settings = unit(name)
        assert settings["ExecStart"] == [f"{SOURCE_TREE}/deploy/procfile-run {process}"], name
        assert settings["WorkingDirectory"] == [SOURCE_TREE]
        assert "PAYBRIDGE_ENV=production" in settings["Environment"]
        assert settings["EnvironmentFile"] == ["/etc/paybridge/paybridge.env"]
        assert settings["User"] == ["paybridge"]  # never root
    assert unit(UNITS["release"])["Type"] == ["oneshot"]
    for process in ("web", "worker"):
        assert unit(UNITS[process])["Restart"] == ["always"]
        assert unit(UNITS[process])["WantedBy"] == ["paybridge.target"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_accepts_the_units(tmp_path):
    """systemd's own checker, on the units pointed at this source tree (the commands exist)."""
    for path in (DEPLOY / "systemd").iterdir():
        text = path.read_text().replace(SOURCE_TREE, str(ROOT))
        (tmp_path / path.name).write_text(text)
    names = [*UNITS.values(), "paybridge.target"]
    names[names.index("paybridge-worker@.service")] = "paybridge-worker@01.service"
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(f"{tmp_path}/{name}" for name in names)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_the_web_unit_serves_gunicorn_on_loopback_where_the_nginx_recipe_looks():
    web = unit(UNITS["web"])
    assert f"PORT={WEB_PORT}" in web["Environment"]
    assert not any(value.startswith("WEB_BIND=") for value in web["Environment"])  # 127.0.0.1
    assert f"PAYBRIDGE_UPSTREAM=127.0.0.1:{WEB_PORT}" in TEMPLATE.read_text()
    # gunicorn lets requests finish for graceful_timeout (30 s) after SIGTERM: systemd waits.
    assert int(web["TimeoutStopSec"][0]) > 30


def test_the_image_runs_every_process_through_procfile_run_from_the_locked_venv():
    image = dockerfile()
    python = re.match(r"python:(\d+\.\d+)-", image["FROM"][0])
    assert python and f">={python[1]}" in _pyproject()["project"]["requires-python"]
    assert image["WORKDIR"] == [SOURCE_TREE]
    assert "deploy/install" in image["RUN"]
    assert image["USER"] == ["paybridge"]
    assert json.loads(image["ENTRYPOINT"][0]) == ["deploy/procfile-run"]
    assert json.loads(image["CMD"][0]) == ["web"]
    env = dict(item.split("=", 1) for line in image["ENV"] for item in shlex.split(line))
    assert env["PAYBRIDGE_ENV"] == "production" and env["PORT"] == WEB_PORT
    assert "WEB_BIND" not in env  # loopback unless compose's private network says otherwise


def test_compose_runs_the_procfiles_processes_from_that_image():
    services = compose()["services"]
    for process in procfile():
        service = services[process]
        assert service["build"] == {"context": "..", "dockerfile": "deploy/docker/Dockerfile"}
        assert service["command"] == [process]
        assert service["env_file"] == "paybridge.env"
        assert service["environment"]["PAYBRIDGE_ENV"] == "production"
        assert service["environment"]["PROXY_FIX_HOPS"] == "1"  # nginx in front
        assert service["environment"]["DATABASE_URL"].startswith("mysql+pymysql://")
        assert service["environment"]["DATABASE_URL"].endswith("@mariadb/paybridge?charset=utf8mb4")
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert services["release"]["restart"] == "no"
    for process in ("web", "worker"):
        needs = services[process]["depends_on"]["release"]
        assert needs == {"condition": "service_completed_successfully"}
    # The workers compose starts are the ones the release's connection budget counts.
    worker = services["worker"]
    assert worker["deploy"]["replicas"] == worker["environment"]["WORKER_PROCESSES"]
    # Each worker's metrics are reachable from compose's network (Prometheus), not only inside.
    assert worker["environment"]["WORKER_METRICS_HOST"] == "0.0.0.0"


def test_compose_reaches_gunicorn_only_through_nginx_and_the_repositorys_site():
    services = compose()["services"]
    web, nginx = services["web"], services["nginx"]
    assert "ports" not in web  # on compose's network only
    assert web["environment"]["WEB_BIND"] == "0.0.0.0"
    assert web["environment"]["PORT"] == WEB_PORT
    assert nginx["environment"]["PAYBRIDGE_UPSTREAM"] == f"web:{WEB_PORT}"
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in nginx["volumes"]}
    site = mounts["/etc/nginx/templates/default.conf.template"]
    assert (DEPLOY / site).resolve() == TEMPLATE
    # The image's envsubst fills in every ${PAYBRIDGE_…} name the site has, and only those.
    names = set(re.findall(r"\$\{(PAYBRIDGE_[A-Z_]+)\}", TEMPLATE.read_text()))
    assert names <= set(nginx["environment"])
    assert nginx["environment"]["NGINX_ENVSUBST_FILTER"] == "^PAYBRIDGE_"
    assert sorted(nginx["ports"]) == ["443:443", "80:80"]


def test_composes_mariadb_is_one_the_release_accepts():
    tag = compose()["services"]["mariadb"]["image"].split(":")[1]
    assert parse_server_version(f"{tag}-MariaDB").number >= SKIP_LOCKED_SINCE["MariaDB"]


def test_every_variable_compose_requires_is_in_its_example():
    required = set(re.findall(r"\$\{(\w+):\?", (DEPLOY / "compose.yaml").read_text()))
    example = (DEPLOY / "compose.env.example").read_text()
    assert required and required <= set(re.findall(r"^(\w+)=", example, re.MULTILINE))


def _example_settings() -> dict[str, str]:
    lines = (DEPLOY / "paybridge.env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_the_settings_example_names_only_settings_paybridge_reads():
    assert set(_example_settings()) <= environment_variables()


def test_the_settings_example_with_its_blanks_filled_in_starts_production(monkeypatch):
    """An operator who fills in the blanks has a configuration production accepts, and one who
    forgets one is told its name."""
    example = _example_settings()
    clear_settings(monkeypatch)
    for name, value in example.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as refused:
        load_config("production")
    assert {"SECRET_KEY", "METRICS_TOKEN"} <= set(refused.value.problems)

    filled = {
        "SECRET_KEY": secrets.token_urlsafe(48),
        "METRICS_TOKEN": secrets.token_urlsafe(48),
        "STRIPE_LIVE_SECRET_KEY": "sk_live_" + secrets.token_hex(12),
        "STRIPE_LIVE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(12),
        "STRIPE_TEST_SECRET_KEY": "sk_test_" + secrets.token_hex(12),
        "STRIPE_TEST_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(12),
    }
    assert {name for name, value in example.items() if not value} == set(filled)
    for name, value in filled.items():
        monkeypatch.setenv(name, value)
    config = load_config("production")
    assert config.ENV_NAME == "production" and config.PROXY_FIX_HOPS == 1


def test_the_procfiles_process_model_defaults_are_the_settings_defaults():
    """flask doctor counts the connections of WEB_PROCESSES × WEB_THREADS: the Procfile's web
    must run exactly that, also when the variables are unset."""
    web = procfile()["web"]
    for name in ("WEB_PROCESSES", "WEB_THREADS"):
        default = re.search(rf"\$\{{{name}:-(\d+)\}}", web)
        assert default, f"the Procfile's web does not read {name}"
        assert int(default[1]) == Config.model_fields[name].default
    assert "flask --app wsgi doctor && flask --app wsgi db upgrade" == procfile()["release"]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# --- procfile-run itself -------------------------------------------------------------------------


def test_procfile_run_names_the_processes_when_given_another():
    result = subprocess.run([PROCFILE_RUN, "shop"], capture_output=True, text=True, timeout=10)
    assert result.returncode == 64
    assert "no process 'shop' in the Procfile; it has: release web worker" in result.stderr


@pytest.fixture
def fresh_database():
    name = f"{TEST_DATABASE}_release"
    recreate_database(name)
    yield mysql_url(name)
    drop_database(name)


def _production_env(database_url: str, redis_url: str, **more: str) -> dict[str, str]:
    """The process's environment: production settings only, none of the suite's own."""
    keep = ("HOME", "LANG", "PATH", "NO_PROXY", "SYSTEMROOT")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    return (
        env
        | safe_production_settings(database_url)
        | {
            "PAYBRIDGE_ENV": "production",
            "REDIS_URL": redis_url,
            **more,
        }
    )


def test_the_release_checks_the_server_then_migrates_a_fresh_database(fresh_database, redis_url):
    env = _production_env(fresh_database, redis_url)

    result = subprocess.run(
        [PROCFILE_RUN, "release"], cwd="/", env=env, capture_output=True, text=True, timeout=180
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: MariaDB 10.6+ or MySQL 8.0.1+ needed, found MariaDB" in result.stdout
    engine = create_engine(fresh_database)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"alembic_version", "payments", "merchants"} <= tables


def test_the_web_is_gunicorn_itself_and_stops_cleanly_on_sigterm(fresh_database, redis_url):
    """Docker signals the container's first process and systemd the unit's main one: after
    procfile-run, that process is gunicorn's master, not a shell that would swallow SIGTERM."""
    port = free_port()
    env = _production_env(
        fresh_database, redis_url, PORT=str(port), WEB_PROCESSES="1", WEB_THREADS="2"
    )
    # A session of its own: whatever it starts ends with it, even if it did not exec gunicorn.
    proc = subprocess.Popen([PROCFILE_RUN, "web"], cwd="/", env=env, start_new_session=True)
    try:

        def answering() -> bool:
            assert proc.poll() is None, "the web exited"
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=3).ok
            except requests.RequestException:
                return False

        wait_until(answering, what="procfile-run web answering /healthz", timeout=30)
        command = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert any(part.endswith(b"gunicorn") for part in command), command
        assert b"--workers" in command and command[command.index(b"--workers") + 1] == b"1"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
    finally:
        if proc.poll() is None:
            stop_process(proc)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything of its session left behind
