"""What /readyz checks: each dependency with a probe, whether PayBridge can serve without it
(`critical`), and what its loss degrades, in words for the operator reading the answer.

Only a critical dependency that is down makes the answer 503 (take this instance out of
rotation); any other makes it 200 `degraded`, naming it and what suffers. A Redis outage
therefore keeps every web process serving: payments, webhooks and notifications need only the
database.

Another check is one more line in DEPENDENCIES: a name, whether it is critical, what it
degrades, and a probe, a function without arguments (called inside the request) that returns
`Probe(ok, detail)` (or a plain `(ok, detail)` pair) and may raise, which counts as down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from flask import Flask, current_app
from sqlalchemy import text

from app.extensions import db, get_limits_redis
from app.psp_events.setup import startup_readiness

log = logging.getLogger(__name__)


class Probe(NamedTuple):
    """One dependency's answer: up or not, and a detail for the operator (never a secret)."""

    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Dependency:
    name: str
    critical: bool  # down: this instance cannot serve (503), not merely serves less
    degrades: str  # what its loss costs, in words
    probe: Callable[[], Probe | tuple[bool, str]]


def database_answers() -> Probe:
    db.session.execute(text("SELECT 1"))
    return Probe(True)


def redis_answers() -> Probe:
    # The rate limits' client: sub-second timeouts, so a Redis that hangs cannot hold the probe
    # past a load balancer's patience.
    get_limits_redis().ping()
    return Probe(True)


DEPENDENCIES: tuple[Dependency, ...] = (
    Dependency(
        "database",
        critical=True,
        degrades="everything: the API answers 503 SERVICE_UNAVAILABLE with Retry-After, Stripe's "
        "webhooks get a 503 and come again, notifications wait",
        probe=database_answers,
    ),
    Dependency(
        "redis",
        critical=False,
        degrades="the API's rate limits and the PSP create cap let requests through unchecked; "
        "the dashboard's log-in limits count in each process's memory; the periodic jobs "
        "(scheduled reconciliation, subscription upkeep, the Idempotency-Key purge) wait "
        "(a reconciliation started by hand still runs); payments, webhooks and "
        "notifications are not affected",
        probe=redis_answers,
    ),
)


def stripe_setup_as_found() -> Probe:
    """Not probed per request (that would be several calls to Stripe per probe): what this
    process found when it checked Stripe at its start (production's web processes), pending
    while that check runs."""
    found = startup_readiness(current_app)
    if found is None:  # not listed in a process that does not check (`dependencies`)
        return Probe(True, "not checked in this process")
    return Probe(*found)


STRIPE_SETUP = Dependency(
    "stripe",
    critical=False,
    degrades="what the detail names: a mode whose key Stripe refuses creates no payment; "
    "without that mode's webhook endpoint, its events or its secret, Stripe's events are not "
    "heard and payments finish only through the shopper's return and reconciliation, minutes "
    "later",
    probe=stripe_setup_as_found,
)


def dependencies(app: Flask) -> tuple[Dependency, ...]:
    """What this process's /readyz reports: Stripe's setup too where this process checks it
    (pending until the check ends)."""
    return (*DEPENDENCIES, STRIPE_SETUP) if startup_readiness(app) else DEPENDENCIES


def check(dependency: Dependency) -> Probe:
    """Run one probe; an exception is an answer too: down, named by its kind (its message may
    carry addresses the caller of /readyz need not see)."""
    try:
        return Probe(*dependency.probe())
    except Exception as exc:
        db.session.rollback()  # a failed statement must not poison the request's session
        log.warning("readiness: %s unreachable (%s)", dependency.name, type(exc).__name__)
        return Probe(False, f"no answer ({type(exc).__name__})")


def readiness(dependencies: tuple[Dependency, ...] = DEPENDENCIES) -> tuple[dict, int]:
    """/readyz's body and status: 503 when a critical dependency is down, else 200 (`ok`, or
    `degraded` naming what is down and what that costs)."""
    checks, down, critical_down = {}, [], False
    for dependency in dependencies:
        ok, detail = check(dependency)
        entry = {"ok": ok, "critical": dependency.critical, "degrades": dependency.degrades}
        if detail:
            entry["detail"] = detail
        checks[dependency.name] = entry
        if not ok:
            down.append(dependency.name)
            critical_down = critical_down or dependency.critical
    status = "unavailable" if critical_down else ("degraded" if down else "ok")
    return {"status": status, "checks": checks, "down": down}, (503 if critical_down else 200)
