"""`python worker.py …` as the Procfile runs it, in a process of its own with the test
environment, its output collected for assertions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """`python worker.py …` with the test environment; its output collected for assertions."""

    def __init__(self, *args: str, **env: str) -> None:
        environment = {**os.environ, "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1", **env}
        self.proc = subprocess.Popen(
            [sys.executable, "worker.py", *args],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: kill() reaches RQ's scheduler child
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._reader.join(2)

    def kill(self) -> None:
        """SIGKILL the worker and what it forked (RQ's scheduler would outlive it otherwise)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)
