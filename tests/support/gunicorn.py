"""`gunicorn wsgi:app` as production runs it, on a free port, from the repository root (so
gunicorn.conf.py applies), for tests that need real processes."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.support.processes import stop_process
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gunicorn_command(port: int, workers: int = 1, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        GUNICORN,
        "--workers", str(workers),
        "--bind", f"127.0.0.1:{port}",
        "--log-level", "warning",
        "--timeout", "60",
        *extra,
        "wsgi:app",
    ]  # fmt: skip


@contextmanager
def running_gunicorn(
    env: dict[str, str],
    *,
    port: int | None = None,
    workers: int = 1,
    extra: tuple[str, ...] = (),
    stderr=None,
) -> Iterator[str]:
    """Start it with `env` (and `extra` arguments: a worker class, threads), wait until /healthz
    answers, yield its URL; stop it afterwards. `stderr`: a file its log goes to (default: the
    test run's)."""
    port = port or free_port()
    proc = subprocess.Popen(
        gunicorn_command(port, workers, extra), cwd=ROOT, env=env, stderr=stderr
    )
    url = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        assert proc.poll() is None, "gunicorn exited"
        try:
            return requests.get(f"{url}/healthz", timeout=3).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(answering, what="gunicorn answering /healthz", timeout=30, interval=0.1)
        yield url
    finally:
        stop_process(proc)
