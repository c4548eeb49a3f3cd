"""Races on purpose: several calls released at the same moment, each in a thread of its own."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def at_once(calls: Sequence[Callable[[], T]], *, timeout: float = 60.0) -> list[T]:
    """Run every call in its own thread, all released together by a barrier; their results in
    the order of `calls`. A call that raised fails the test with its exception, as does one
    still running after `timeout` seconds."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int, call: Callable[[], T]) -> None:
        try:
            barrier.wait()
            results[index] = call()
        except BaseException as exc:  # re-raised in the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    stuck = sum(t.is_alive() for t in threads)
    assert not stuck, f"{stuck} of {len(calls)} calls still running after {timeout}s"
    if errors:
        raise errors[0]
    return results
