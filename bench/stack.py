"""Everything the benchmark runs against, started by it and stopped by it.

Its own MariaDB database (migrated with `flask db upgrade`), its own Redis db, the Stripe
emulator, gunicorn serving wsgi:app with the Procfile's worker model, the RQ worker(s), and a
notification receiver. Every process is started in its own process group and only those groups
are signalled on the way out.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pymysql
import requests
from redis import Redis

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
FLASK = str(ROOT / ".venv" / "bin" / "flask")
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")

MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root"}
REDIS_BASE = "redis://127.0.0.1:6379"
# The load is the benchmark's, one client with one API key at hundreds of requests a second:
# PayBridge's per-key API limits (100/s) and its cap on creates towards the PSP would measure
# themselves, not the app. They stay on (their checks cost what they cost in production), with
# limits no scenario reaches.
BENCH_RATE_LIMITS = {
    "API_RATE_LIMIT_READ_PER_SECOND": "1000000",
    "API_RATE_LIMIT_WRITE_PER_SECOND": "1000000",
    "API_RATE_LIMIT_ANONYMOUS_PER_SECOND": "1000000",
    "PSP_CREATE_RATE_PER_SECOND": "1000000",
    "PSP_CREATE_MERCHANT_SHARE": "1",
}
WEBHOOK_SECRET = "whsec_paybridge_bench_secret"
STRIPE_KEY = "sk_test_paybridge_bench"


def in_batches(values: list, size: int = 1000) -> Iterator[tuple[list, str]]:
    """`values` a slice at a time for SQL's `IN (…)`: each slice and its "%s,%s,…" markers."""
    for i in range(0, len(values), size):
        chunk = values[i : i + size]
        yield chunk, ",".join(["%s"] * len(chunk))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:g}s")


def procfile_web_args(port: int) -> list[str]:
    """The Procfile's web command, bound to 127.0.0.1:port (the worker model stays as written)."""
    line = next(ln for ln in (ROOT / "Procfile").read_text().splitlines() if ln.startswith("web:"))
    command = line.split(":", 1)[1].strip()
    command = re.sub(r"\$\{PORT:-\d+\}|\$PORT", str(port), command)
    command = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", command)  # the defaults it is written with
    args = shlex.split(command)
    if "--bind" in args:
        args[args.index("--bind") + 1] = f"127.0.0.1:{port}"
    assert args[0] == "gunicorn", args
    return [GUNICORN, *args[1:]]


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pid_of(name: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    return int(entry.name)
            except OSError:
                continue
    return None


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path


@dataclass
class Stack:
    results_dir: Path
    database: str = "pb_bench"
    redis_db: int = 12
    web_args: list[str] | None = None
    extra_env: dict = field(default_factory=dict)
    db_url_args: str = ""
    procs: dict[str, Proc] = field(default_factory=dict)
    # CPU seconds of processes stopped mid-run (workers restarted by a scenario), so that
    # cpu() stays a running total per kind instead of dropping when a process is replaced.
    retired_cpu: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.web_port = free_port()
        self.emu_port = free_port()
        self.recv_port = free_port()
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.emu_url = f"http://127.0.0.1:{self.emu_port}"
        self.recv_url = f"http://127.0.0.1:{self.recv_port}"
        self.logs = self.results_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.redis = Redis.from_url(f"{REDIS_BASE}/{self.redis_db}")

    # -- environment -----------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        url = f"mysql+pymysql://root@127.0.0.1:3306/{self.database}?charset=utf8mb4"
        return url + (f"&{self.db_url_args}" if self.db_url_args else "")

    def global_status(self, *names: str) -> dict:
        conn = self.mysql()
        with conn.cursor() as cur:
            marks = ",".join(["%s"] * len(names))
            cur.execute(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({marks})", names)
            out = {k: int(v) for k, v in cur.fetchall()}
        conn.close()
        return out

    def env(self) -> dict:
        env = dict(os.environ)
        env.update(
            {
                "PAYBRIDGE_ENV": "development",
                "DATABASE_URL": self.database_url,
                "REDIS_URL": f"{REDIS_BASE}/{self.redis_db}",
                "RATELIMIT_STORAGE_URI": f"{REDIS_BASE}/{self.redis_db}",
                "RQ_QUEUE_PREFIX": "pbbench",
                "STRIPE_API_BASE": self.emu_url,
                "STRIPE_TEST_SECRET_KEY": STRIPE_KEY,
                "STRIPE_TEST_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "PUBLIC_BASE_URL": self.web_url,
                "SECRET_KEY": "bench-secret-key-not-for-production",
                "LOG_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
                **BENCH_RATE_LIMITS,
            }
        )
        env.update(self.extra_env)
        return env

    def mysql(self, database: str | None = None, **kw) -> pymysql.Connection:
        return pymysql.connect(
            **MYSQL, database=database or self.database, autocommit=True, charset="utf8mb4", **kw
        )

    def set_buffer_pool(self, mb: int) -> int:
        """Resize InnoDB's buffer pool (online in MariaDB 10.11); returns the size it had (MB).

        The machine's default (128 MB) is Debian's, not a database server's: with it, the 1M-row
        load and the reads measure page-cache misses of the shared server rather than PayBridge.
        """
        conn = pymysql.connect(**MYSQL, autocommit=True)
        with conn.cursor() as cur:
            cur.execute("SELECT @@innodb_buffer_pool_size")
            before = int(cur.fetchone()[0]) // 1048576
            cur.execute(f"SET GLOBAL innodb_buffer_pool_size = {int(mb) * 1048576}")
            for _ in range(60):  # the resize runs in the background
                cur.execute("SHOW STATUS LIKE 'Innodb_buffer_pool_resize_status'")
                row = cur.fetchone()
                if not row or not row[1] or row[1].startswith("Completed"):
                    break
                time.sleep(0.5)
        conn.close()
        return before

    # -- processes ---------------------------------------------------------------------------
    def spawn(self, name: str, args: list[str], env: dict | None = None) -> Proc:
        log = self.logs / f"{name}.log"
        handle = log.open("ab")
        popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env or self.env(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Proc(name, popen, log)
        self.procs[name] = proc
        return proc

    def stop(self, name: str, timeout: float = 15.0) -> None:
        self.stop_many([name], timeout)

    @contextmanager
    def workers_paused(self) -> Iterator[None]:
        """SIGSTOP the worker processes (and RQ's scheduler children) for a measurement of the
        web alone: their pumps' idle look for due notifications would otherwise count in the
        server-wide MariaDB and Redis statement counters."""
        groups = [p.popen.pid for n, p in self.procs.items() if n.startswith("worker")]
        for pgid in groups:
            os.killpg(pgid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pgid in groups:
                os.killpg(pgid, signal.SIGCONT)

    def stop_many(self, names: list[str], timeout: float = 15.0) -> None:
        """SIGTERM every one first, then wait for all: RQ workers each take up to 5 s to end
        their helper threads warmly, and stopping four one after the other cost ~15 s."""
        stopping = []
        for name in names:
            proc = self.procs.pop(name, None)
            if proc is None or proc.popen.poll() is not None:
                continue
            key = _cpu_kind(name)
            self.retired_cpu[key] = self.retired_cpu.get(key, 0.0) + _cpu_of(name, proc.popen.pid)
            try:
                os.killpg(proc.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            stopping.append(proc)
        deadline = time.monotonic() + timeout
        for proc in stopping:
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(5)

    def stop_all(self) -> None:
        # All at once (stop_many): one by one, the four workers' warm stops took ~20 s.
        self.stop_many(list(reversed(self.procs)))

    # -- lifecycle ---------------------------------------------------------------------------
    def prepare_database(self) -> None:
        conn = self.mysql(database="mysql")
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.database}`")
            cur.execute(
                f"CREATE DATABASE `{self.database}` "
                "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        conn.close()
        subprocess.run(
            [FLASK, "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT,
            env=self.env(),
            check=True,
            capture_output=True,
        )
        self.redis.flushdb()

    def drop_database(self) -> None:
        conn = self.mysql(database="mysql")
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.database}`")
        conn.close()
        self.redis.flushdb()

    def start_emulator(self) -> None:
        proc = self.spawn(
            "emulator",
            [
                PY,
                "-m",
                "stripe_emulator",
                "--port",
                str(self.emu_port),
                "--log-level",
                "WARNING",
                "--webhook-retry-schedule",
                "2,5,10,30",
            ],
        )
        wait_http(f"{self.emu_url}/_emulator/health", proc=proc.popen)

    def start_receiver(self) -> None:
        proc = self.spawn("receiver", [PY, "-m", "bench.receiver", "--port", str(self.recv_port)])
        wait_http(f"{self.recv_url}/_stats", proc=proc.popen)

    def start_web(self) -> None:
        args = self.web_args or procfile_web_args(self.web_port)
        proc = self.spawn("web", args)
        wait_http(f"{self.web_url}/healthz", timeout=60, proc=proc.popen)

    def start_workers(self, count: int = 1) -> None:
        for i in range(count):
            # No metrics port: several workers on this host, and the bench reads none of them.
            command = [PY, "worker.py", "--no-cron", "--name", f"bench-{i}", "--metrics-port", "0"]
            self.spawn(f"worker{i}", command)
        time.sleep(1.5)

    def stop_workers(self) -> None:
        self.stop_many([n for n in self.procs if n.startswith("worker")])

    def start(self, workers: int = 1) -> None:
        self.prepare_database()
        self.start_emulator()
        self.start_receiver()
        self.start_web()
        self.start_workers(workers)

    # -- helpers ---------------------------------------------------------------------------
    def appctl(self, *args: str, timeout: float = 600, env: dict | None = None) -> dict:
        """Run `python -m bench.appctl …` in the app's environment; its last line is JSON."""
        out = subprocess.run(
            [PY, "-m", "bench.appctl", *args],
            cwd=ROOT,
            env={**self.env(), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if out.returncode != 0:
            raise RuntimeError(f"appctl {args[0]} failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def emu(self, method: str, path: str, body: dict | None = None) -> dict:
        resp = requests.request(method, f"{self.emu_url}/_emulator/{path}", json=body, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def set_psp_latency(self, mean_ms: float, p99_ms: float) -> None:
        self.emu("POST", "latency", {"mean_ms": mean_ms, "p99_ms": p99_ms})

    def receiver(self, method: str, path: str, body: dict | None = None):
        resp = requests.request(method, f"{self.recv_url}{path}", json=body, timeout=60)
        resp.raise_for_status()
        return resp.json()

    def memory(self) -> dict:
        """RSS (MB) of every process: gunicorn master and each web worker, RQ workers, etc."""
        out = {}
        for name, proc in self.procs.items():
            pid = proc.popen.pid
            if name == "web":
                kb = rss_kb(pid)
                out["web-master"] = round(kb / 1024, 1) if kb else None
                for i, child in enumerate(sorted(children(pid))):
                    kb = rss_kb(child)
                    out[f"web-worker{i}"] = round(kb / 1024, 1) if kb else None
            else:
                kb = rss_kb(pid)
                out[name] = round(kb / 1024, 1) if kb else None
        for name in ("mariadbd", "redis-server"):
            pid = pid_of(name)
            if pid:
                kb = rss_kb(pid)
                out[name + " (shared)"] = round(kb / 1024, 1) if kb else None
        return out

    def cpu(self) -> dict:
        """CPU seconds used so far by each kind of process (web = master + its workers)."""
        out: dict[str, float] = dict(self.retired_cpu)
        for name, proc in self.procs.items():
            key = _cpu_kind(name)
            out[key] = out.get(key, 0.0) + _cpu_of(name, proc.popen.pid)
        for name in ("mariadbd", "redis-server"):
            pid = pid_of(name)
            if pid:
                out[name + " (shared)"] = cpu_s(pid)
        t = os.times()
        out["bench (load generator)"] = t.user + t.system
        return out

    def web_worker_pids(self) -> list[int]:
        proc = self.procs.get("web")
        return sorted(children(proc.popen.pid)) if proc else []


def _cpu_of(name: str, pid: int) -> float:
    """CPU seconds of one started process (gunicorn: its master and every worker)."""
    pids = [pid, *children(pid)] if name == "web" else [pid]
    return sum(cpu_s(p) for p in pids)


def _cpu_kind(name: str) -> str:
    """The kind a process's CPU is counted under: every RQ worker process is 'worker'."""
    return "worker" if name.startswith("worker") else name


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
