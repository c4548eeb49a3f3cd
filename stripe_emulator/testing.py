"""Run the emulator as a subprocess for tests: ``with run_emulator() as emu: ...``."""

from __future__ import annotations

import json as _json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

READY_PREFIX = "stripe-emulator listening on "
# Any sk_test_/sk_live_ key is accepted; these are the ones tests use for each mode.
TEST_API_KEY = "sk_test_emulator"
LIVE_API_KEY = "sk_live_emulator"


class EmulatorError(RuntimeError):
    """A control call answered non-2xx."""

    def __init__(self, status: int, body) -> None:
        super().__init__(f"emulator answered {status}: {body}")
        self.status = status
        self.body = body


class RunningEmulator:
    def __init__(self, url: str, process: subprocess.Popen) -> None:
        self.url = url
        self.api_key = TEST_API_KEY
        self.live_api_key = LIVE_API_KEY
        self.process = process

    def control(self, method: str, path: str, json: dict | None = None) -> dict:
        """Call ``/_emulator/<path>``; raise EmulatorError on a non-2xx answer."""
        data = None if json is None else _json.dumps(json).encode()
        req = urllib.request.Request(
            f"{self.url}/_emulator/{path.lstrip('/')}",
            data=data,
            method=method.upper(),
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return _json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                body = _json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            raise EmulatorError(exc.code, body) from None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def run_emulator(
    *,
    port: int = 0,
    db_path: str | None = None,
    webhooks: list[tuple[str, str]] = (),
    live_webhooks: list[tuple[str, str]] = (),
    retry_schedule: str = "0.2,0.5,1",
    async_delay: float = 0,
    refund_delay: float = 0,
    extra_args: list[str] = (),
) -> Iterator[RunningEmulator]:
    """Start ``python -m stripe_emulator`` on a free port; wait until it answers; stop on exit.

    ``webhooks`` and ``live_webhooks``: (url, secret) endpoints of test and live mode."""
    cmd = [
        sys.executable, "-m", "stripe_emulator", "--host", "127.0.0.1", "--port", str(port),
        "--webhook-retry-schedule", retry_schedule, "--async-delay", str(async_delay),
        "--refund-delay", str(refund_delay), "--log-level", "WARNING",
    ]  # fmt: skip
    if db_path:
        cmd += ["--db", db_path]
    for url, secret in webhooks:
        cmd += ["--webhook-url", url, "--webhook-secret", secret]
    for url, secret in live_webhooks:
        cmd += ["--live-webhook-url", url, "--live-webhook-secret", secret]
    cmd += list(extra_args)
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    emu = None
    try:
        url = _wait_ready(proc)
        emu = RunningEmulator(url, proc)
        _wait_answering(emu)
        yield emu
    finally:
        if emu is not None:
            emu.stop()
        elif proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def _wait_ready(proc: subprocess.Popen, timeout: float = 20) -> str:
    found: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            if line.startswith(READY_PREFIX) and not found:
                found.append(line[len(READY_PREFIX) :].strip())
        # keep draining so the child never blocks on a full pipe

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found:
            return found[0]
        if proc.poll() is not None:
            raise RuntimeError(f"stripe emulator exited with {proc.returncode}")
        time.sleep(0.02)
    raise RuntimeError("stripe emulator did not start in time")


def _wait_answering(emu: RunningEmulator, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            emu.control("GET", "health")
            return
        except (OSError, EmulatorError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
