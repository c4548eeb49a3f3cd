"""What the database server of a deployment must be, checked before a release migrates
(`flask doctor`, the Procfile's release): a version that has `SELECT … FOR UPDATE SKIP LOCKED`
(the notification pump's and reconciliation's claims need it), and room for every connection
the deployment's processes may open (docs/deploy.md, "The connection budget")."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# The first releases with SKIP LOCKED; anything older cannot run PayBridge at all.
SKIP_LOCKED_SINCE = {"MariaDB": (10, 6, 0), "MySQL": (8, 0, 1)}
# MySQL parses CHECK constraints before 8.0.16 and ignores them: the tables' own guards
# (amount > 0, …) would not hold, though PayBridge's checks in code still do.
MYSQL_ENFORCES_CHECKS_SINCE = (8, 0, 16)
SUPPORTED = "MariaDB 10.6+ or MySQL 8.0.1+"

# MariaDB: 10.11.6-MariaDB-0+deb12u1, 11.4.2-MariaDB-log, and 5.5.5-10.6.12-MariaDB as some
# proxies and old clients report it (the 5.5.5- prefix is a compatibility mask).
# MySQL: 8.0.36, 8.0.36-0ubuntu0.22.04.1, 8.4.3-commercial, 9.1.0, 5.7.44-log.
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class ServerVersion:
    product: str  # "MariaDB" or "MySQL"
    number: tuple[int, int, int]
    text: str  # as the server said it

    def __str__(self) -> str:
        return f"{self.product} {'.'.join(map(str, self.number))}"


def parse_server_version(text: str) -> ServerVersion:
    """The product and version number in what `SELECT VERSION()` answers."""
    product = "MariaDB" if "mariadb" in text.lower() else "MySQL"
    number = text.strip()
    if product == "MariaDB":
        number = number.removeprefix("5.5.5-")
    match = _VERSION.match(number)
    if not match:
        raise ValueError(f"cannot read a version number in the server's {text!r}")
    major, minor, patch = (int(part or 0) for part in match.groups())
    return ServerVersion(product, (major, minor, patch), text)


@dataclass(frozen=True)
class ConnectionBudget:
    """The database connections a deployment may hold at once: per host, each web process one
    per thread and each worker process one per RQ thread plus its notification pump's, never
    more than a process's pool (DB_POOL_SIZE + DB_MAX_OVERFLOW); times the hosts."""

    web_processes: int
    web_per_process: int
    worker_processes: int
    worker_per_process: int
    hosts: int

    @property
    def per_host(self) -> int:
        return (
            self.web_processes * self.web_per_process
            + self.worker_processes * self.worker_per_process
        )

    @property
    def total(self) -> int:
        return self.hosts * self.per_host

    def __str__(self) -> str:
        return (
            f"{self.total} connections = {self.hosts} host(s) × ({self.web_processes} web "
            f"processes × {self.web_per_process} + {self.worker_processes} worker processes × "
            f"{self.worker_per_process})"
        )


def connection_budget(settings: Mapping) -> ConnectionBudget:
    """The budget of the deployment `settings` (app.config) describe."""
    pool = settings["DB_POOL_SIZE"] + settings["DB_MAX_OVERFLOW"]
    return ConnectionBudget(
        web_processes=settings["WEB_PROCESSES"],
        web_per_process=min(settings["WEB_THREADS"], pool),
        worker_processes=settings["WORKER_PROCESSES"],
        worker_per_process=min(settings["WORKER_CONCURRENCY"] + 1, pool),
        hosts=settings["DEPLOY_HOSTS"],
    )


@dataclass(frozen=True)
class Assessment:
    refusals: list[str]  # the server cannot run PayBridge
    warnings: list[str]  # it can, but something will hurt


def assess(
    version: ServerVersion,
    budget: ConnectionBudget,
    max_connections: int,
    max_user_connections: int = 0,
) -> Assessment:
    refusals, warnings = [], []
    if version.number < SKIP_LOCKED_SINCE[version.product]:
        refusals.append(
            f"{version} ({version.text}) is too old: PayBridge needs {SUPPORTED}, the first "
            "releases with SELECT … FOR UPDATE SKIP LOCKED (its workers claim notifications "
            "and jobs with it). Upgrade the server before migrating."
        )
    elif version.product == "MySQL" and version.number < MYSQL_ENFORCES_CHECKS_SINCE:
        warnings.append(
            f"{version} ignores the tables' CHECK constraints (MySQL enforces them from "
            "8.0.16): upgrade when you can."
        )
    limits = [("max_connections", max_connections)]
    if max_user_connections:  # 0: no limit per user
        limits.append(("max_user_connections", max_user_connections))
    for name, limit in limits:
        if budget.total > limit:
            warnings.append(
                f"PayBridge may open {budget.total} connections at once, over the server's "
                f"{name} of {limit}: a busy moment will fail with 'Too many connections'. "
                f"Raise {name}, or lower WEB_PROCESSES, WEB_THREADS, WORKER_PROCESSES, "
                "WORKER_CONCURRENCY or DB_POOL_SIZE + DB_MAX_OVERFLOW (docs/deploy.md, "
                '"The connection budget").'
            )
    return Assessment(refusals, warnings)
