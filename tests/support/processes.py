"""Ending a server process a test started."""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM (gunicorn's and nginx's clean shutdown), then SIGKILL if it outlasts `grace`."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
