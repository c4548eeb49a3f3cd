"""Object store: in memory, optionally written through to a SQLite file so a restart keeps state."""

from __future__ import annotations

import copy
import heapq
import itertools
import json
import sqlite3
import threading
from collections.abc import Callable

KINDS = (
    "session", "payment_intent", "charge", "refund", "dispute", "subscription", "invoice",
    "event", "webhook_endpoint", "idempotency", "meta", "mandate",
)  # fmt: skip


class Store:
    """Tables of JSON-able records keyed by id; callers hold ``lock`` around read-modify-write."""

    def __init__(self, db_path: str | None = None) -> None:
        self.lock = threading.RLock()
        self._tables: dict[str, dict[str, dict]] = {k: {} for k in KINDS}
        # Each kind's records newest first, kept between changes: every list call and the due
        # work scanned before most API calls sorted the whole table (60k sessions in a bench
        # run: the emulator was the busiest process). None: to be sorted again.
        self._newest_first: dict[str, list[dict] | None] = {k: None for k in KINDS}
        self._positions: dict[str, dict[str, int] | None] = {k: None for k in KINDS}
        # Per scheduled kind: when each record falls due, and a heap of (due, seq, id) entries
        # pushed on every save (a stale entry is dropped when it comes up).
        self._due_of: dict[str, Callable[[dict], int | None]] = {}
        self._due_heaps: dict[str, list[tuple[int, int, str]]] = {}
        self._seq = itertools.count(1)
        self._db: sqlite3.Connection | None = None
        if db_path:
            self._db = sqlite3.connect(db_path, check_same_thread=False)
            # WAL + NORMAL: durable across a process restart without an fsync per write.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS objects ("
                " kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,"
                " PRIMARY KEY (kind, id))"
            )
            self._db.commit()
            self._load()

    def _load(self) -> None:
        top = 0
        for kind, oid, body in self._db.execute("SELECT kind, id, body FROM objects"):
            if kind in self._tables:
                rec = json.loads(body)
                self._tables[kind][oid] = rec
                top = max(top, rec.get("_seq", 0))
        self._seq = itertools.count(top + 1)

    def save(self, kind: str, rec: dict) -> dict:
        with self.lock:
            rec.setdefault("_seq", next(self._seq))
            table = self._tables[kind]
            if table.get(rec["id"]) is not rec:  # a new record, or a new object for one
                self._newest_first[kind] = None
            table[rec["id"]] = rec
            self._push_due(kind, rec)
            if self._db is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO objects (kind, id, body) VALUES (?, ?, ?)",
                    (kind, rec["id"], json.dumps(rec)),
                )
                self._db.commit()
            return rec

    def get(self, kind: str, oid: str) -> dict | None:
        with self.lock:
            return self._tables[kind].get(oid)

    def delete(self, kind: str, oid: str) -> None:
        with self.lock:
            self._tables[kind].pop(oid, None)
            self._newest_first[kind] = None
            if self._db is not None:
                self._db.execute("DELETE FROM objects WHERE kind = ? AND id = ?", (kind, oid))
                self._db.commit()

    def newest_first(self, kind: str) -> list[dict]:
        """The kind's records, newest first: a list of the caller's own (the order is cached)."""
        return list(self._order(kind))

    def listing(self, kind: str) -> tuple[list[dict], Callable[[str], int | None]]:
        """The cached newest-first order itself (read it under ``lock``, never change it) and
        a lookup of an id's index in it, for paging without copying or scanning the table."""
        with self.lock:
            order = self._order(kind)
            positions = self._positions[kind]
            if positions is None:
                positions = {r["id"]: i for i, r in enumerate(order)}
                self._positions[kind] = positions
            return order, positions.get

    def _order(self, kind: str) -> list[dict]:
        with self.lock:
            order = self._newest_first[kind]
            if order is None:
                order = sorted(self._tables[kind].values(), key=lambda r: r["_seq"], reverse=True)
                self._newest_first[kind] = order
                self._positions[kind] = None
            return order

    def schedule(self, kind: str, due_of: Callable[[dict], int | None]) -> None:
        """Index the kind's records by when they fall due (``due_of``: a clock time or None),
        so the clock's due work looks at what is due, not at the whole table (a bench run's
        50k sessions, scanned on every tick and list call, cost the emulator a third of its
        CPU). Every change of a record must be saved, as it is anyway for the write-through."""
        with self.lock:
            self._due_of[kind] = due_of
            self._due_heaps[kind] = []
            for rec in self._tables[kind].values():
                self._push_due(kind, rec)

    def due(self, kind: str, now: int) -> list[dict]:
        """The kind's records due at ``now``, newest first. They stay indexed until a save
        shows them no longer due, so a failure while handling one is retried next time."""
        with self.lock:
            heap, due_of, table = self._due_heaps[kind], self._due_of[kind], self._tables[kind]
            found: dict[str, dict] = {}
            while heap and heap[0][0] <= now:
                _, _, oid = heapq.heappop(heap)
                rec = table.get(oid)
                at = due_of(rec) if rec is not None else None
                if at is not None and at <= now:  # else stale: a later save pushed its new time
                    found[oid] = rec
            for rec in found.values():
                heapq.heappush(heap, (due_of(rec), rec["_seq"], rec["id"]))
            return sorted(found.values(), key=lambda r: r["_seq"], reverse=True)

    def _push_due(self, kind: str, rec: dict) -> None:
        due_of = self._due_of.get(kind)
        if due_of is not None and (at := due_of(rec)) is not None:
            heapq.heappush(self._due_heaps[kind], (at, rec["_seq"], rec["id"]))

    def clear(self, keep: dict[str, set[str]] | None = None) -> None:
        keep = keep or {}
        with self.lock:
            self._newest_first = {k: None for k in KINDS}
            for kind, table in self._tables.items():
                kept = keep.get(kind, set())
                for oid in [o for o in table if o not in kept]:
                    del table[oid]
            for kind, due_of in self._due_of.items():
                self.schedule(kind, due_of)
            if self._db is not None:
                self._db.execute("DELETE FROM objects")
                for kind, table in self._tables.items():
                    for rec in table.values():
                        self._db.execute(
                            "INSERT INTO objects (kind, id, body) VALUES (?, ?, ?)",
                            (kind, rec["id"], json.dumps(rec)),
                        )
                self._db.commit()


def public(rec: dict) -> dict:
    """A deep copy without the emulator's private ``_`` fields."""
    return {
        k: v if type(v) in _SCALARS else json_copy(v)
        for k, v in rec.items()
        if not k.startswith("_")
    }


_SCALARS = frozenset({str, int, float, bool, type(None)})


def json_copy(value):
    """A deep copy of JSON-shaped data (what every record is: the store persists it as JSON).

    About three times as fast as copy.deepcopy, whose memo and dispatch made rendering the objects
    of each list page a sixth of the emulator's CPU; anything else still goes to deepcopy.
    """
    kind = type(value)
    if kind is dict:
        return {k: v if type(v) in _SCALARS else json_copy(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _SCALARS else json_copy(v) for v in value]
    if kind in _SCALARS:
        return value
    return copy.deepcopy(value)
