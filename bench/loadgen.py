"""Open-model load generation: requests start at a fixed arrival rate, whatever the server does.

A closed loop (N users each waiting for its answer) slows down with the server and so hides
queueing; here request i is due at t0 + i/rate and its latency is measured from that due time,
so a server that falls behind shows its backlog in the percentiles (no coordinated omission).
When more than `max_in_flight` requests are outstanding, new ones still count: they are sent
as soon as a slot frees and their wait is part of their latency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp

# (method, path, headers, body bytes or None)
Request = tuple[str, str, dict, bytes | None]


@dataclass
class Result:
    name: str
    offered_rate: float
    sent: int = 0
    ok: int = 0
    errors: int = 0
    statuses: dict = field(default_factory=dict)
    latencies_ms: list = field(default_factory=list)
    elapsed_s: float = 0.0
    late_starts: int = 0
    error_samples: list = field(default_factory=list)
    failed: list = field(default_factory=list)  # indices of requests not answered with an ok status

    def percentile(self, p: float) -> float | None:
        if not self.latencies_ms:
            return None
        values = sorted(self.latencies_ms)
        k = min(len(values) - 1, max(0, int(round(p / 100 * len(values) + 0.5)) - 1))
        return values[k]

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    def summary(self) -> dict:
        return {
            "name": self.name,
            "offered_rate": self.offered_rate,
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items(), key=str)},
            "elapsed_s": round(self.elapsed_s, 3),
            "throughput": round(self.throughput, 1),
            "p50_ms": _r(self.percentile(50)),
            "p95_ms": _r(self.percentile(95)),
            "p99_ms": _r(self.percentile(99)),
            "max_ms": _r(max(self.latencies_ms) if self.latencies_ms else None),
            "late_starts": self.late_starts,
            "error_samples": self.error_samples[:5],
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


async def due_times(start: float, count: int, rate: float) -> AsyncIterator[tuple[int, float]]:
    """Open model: request i is due at start + i/rate, however the ones before it are doing;
    yields (i, due) as each falls due (late, if the loop itself fell behind)."""
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        yield i, due


async def _run(
    base_url: str,
    name: str,
    rate: float,
    count: int,
    make: Callable[[int], Request],
    ok_statuses: set[int],
    max_in_flight: int,
    timeout_s: float,
) -> Result:
    result = Result(name=name, offered_rate=rate)
    slots = asyncio.Semaphore(max_in_flight)
    connector = aiohttp.TCPConnector(limit=max_in_flight, limit_per_host=max_in_flight)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as session:

        async def one(i: int, due: float) -> None:
            method, path, headers, body = make(i)
            async with slots:
                if time.perf_counter() - due > 0.05:
                    result.late_starts += 1
                if time.perf_counter() - due > timeout_s:
                    # Waited its whole timeout for a free connection: a client would have
                    # given up. Counted as an error, never sent.
                    result.statuses["dropped"] = result.statuses.get("dropped", 0) + 1
                    result.errors += 1
                    result.failed.append(i)
                    return
                try:
                    async with session.request(method, path, headers=headers, data=body) as resp:
                        await resp.read()
                        status = resp.status
                except (TimeoutError, aiohttp.ClientError) as exc:
                    status = type(exc).__name__
            latency = (time.perf_counter() - due) * 1000
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status in ok_statuses:
                result.ok += 1
                result.latencies_ms.append(latency)
            else:
                result.errors += 1
                result.failed.append(i)
                result.latencies_ms.append(latency)
                if len(result.error_samples) < 5:
                    result.error_samples.append(f"{method} {path} -> {status}")

        tasks = []
        start = time.perf_counter()
        async for i, due in due_times(start, count, rate):
            tasks.append(asyncio.create_task(one(i, due)))
            result.sent += 1
        await asyncio.gather(*tasks)
        result.elapsed_s = time.perf_counter() - start
    return result


def run(
    base_url: str,
    name: str,
    *,
    rate: float,
    count: int,
    make: Callable[[int], Request],
    ok_statuses: set[int] | frozenset[int] = frozenset({200}),
    max_in_flight: int = 512,
    timeout_s: float = 30.0,
) -> Result:
    """Send `count` requests at `rate` per second (open model); return what happened."""
    return asyncio.run(
        _run(base_url, name, rate, count, make, set(ok_statuses), max_in_flight, timeout_s)
    )
