"""Asynchronous, signed, retried webhook delivery (never inside the request that caused it)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import threading
import time
import urllib.error
import urllib.request

log = logging.getLogger("stripe_emulator.webhooks")

WORKERS = 4
OUT_OF_ORDER_HOLD = 5.0  # a held event goes out after the next one, or after this many seconds
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


def sign(payload: str, secret: str, timestamp: int) -> str:
    """Stripe-Signature header value, computed exactly as Stripe does (CONTRACT §3.1)."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def endpoint_wants(endpoint: dict, event_type: str) -> bool:
    return any(e == "*" or e == event_type for e in endpoint["enabled_events"])


class Dispatcher:
    def __init__(self, emulator) -> None:
        self.emu = emulator
        self.cond = threading.Condition()
        self.deliveries: dict[str, dict] = {}
        # Indexes so a long benchmark run does not make every worker wake-up O(all deliveries).
        self.pending: dict[str, dict] = {}
        self.by_event: dict[str, list[dict]] = {}
        self.dropped: dict[str, int] = {}
        self.paused = False
        self._ids = itertools.count(1)
        self._stopping = False
        self._threads: list[threading.Thread] = []

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        for n in range(WORKERS):
            t = threading.Thread(target=self._work, name=f"webhook-{n}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        with self.cond:
            self._stopping = True
            self.cond.notify_all()

    def reset(self) -> None:
        with self.cond:
            self.deliveries.clear()
            self.pending.clear()
            self.by_event.clear()
            self.dropped.clear()
            self.paused = False
            self.cond.notify_all()

    # -- queueing -------------------------------------------------------------------------
    def enqueue(
        self, event: dict, *, redelivery: bool = False, after: list[str] | None = None
    ) -> list[dict]:
        """Queue the event for each endpoint that wants it; `after`: the ids of the events its
        act emitted before it, each endpoint's delivery waiting for that endpoint's latest."""
        endpoints = [
            e for e in self.emu.endpoints(event["livemode"]) if endpoint_wants(e, event["type"])
        ]
        if not endpoints:
            return []
        faults = self.emu.faults
        if not redelivery and faults.take_webhook("webhook_drop", event["type"]):
            with self.cond:
                self.dropped[event["id"]] = len(endpoints)
            log.info("dropping %s (fault)", event["id"])
            return []
        copies = (
            2 if not redelivery and faults.take_webhook("webhook_duplicate", event["type"]) else 1
        )
        hold = not redelivery and faults.take_webhook("webhook_out_of_order", event["type"])
        # Only the public event goes on the wire (the store's bookkeeping fields stay home).
        payload = {k: v for k, v in event.items() if not k.startswith("_")}
        payload["pending_webhooks"] = len(endpoints)
        body = json.dumps(payload, indent=2)
        created = []
        now = time.monotonic()
        # A held event waits for a newer one about the same kind of object (a checkout session's
        # later event, not an unrelated payment_intent.* sent in between), or OUT_OF_ORDER_HOLD.
        kind = ((event.get("data") or {}).get("object") or {}).get("object")
        with self.cond:
            for ep in endpoints:
                held = [
                    d
                    for d in self.pending.values()
                    if d["_held"] and d["_endpoint_id"] == ep["id"] and d["_kind"] == kind
                ]
                previous = self._act_previous(after or [], ep["id"])
                for _ in range(copies):
                    d = {
                        "id": f"whdel_{next(self._ids)}",
                        "event_id": event["id"],
                        "event_type": event["type"],
                        "endpoint_id": ep["id"],
                        "endpoint_url": ep["url"],
                        "status": "pending",
                        "attempts": [],
                        "_endpoint_id": ep["id"],
                        "_secret": ep["secret"],
                        "_body": body,
                        "_held": hold,
                        "_kind": kind,
                        "_after": previous,
                        "_next_at": now + (OUT_OF_ORDER_HOLD if hold else 0),
                        "_busy": False,
                    }
                    self.deliveries[d["id"]] = d
                    self.pending[d["id"]] = d
                    self.by_event.setdefault(event["id"], []).append(d)
                    created.append(d)
                # Events held by an out_of_order fault go once this newer one was attempted.
                for h in held:
                    h["_held"] = False
                    h["_after"] = created[-1]["id"]
                    h["_next_at"] = now
            self.cond.notify_all()
        return created

    def _act_previous(self, event_ids: list[str], endpoint_id: str) -> str | None:
        """The delivery to this endpoint of the latest of these events it gets (caller holds
        `cond`)."""
        for event_id in reversed(event_ids):
            ours = [d for d in self.by_event.get(event_id, []) if d["_endpoint_id"] == endpoint_id]
            if ours:
                return ours[-1]["id"]
        return None

    def redeliver(self, event: dict) -> list[dict]:
        return [self._public(d) for d in self.enqueue(event, redelivery=True)]

    def pause(self) -> None:
        with self.cond:
            self.paused = True

    def resume(self) -> None:
        with self.cond:
            self.paused = False
            self.cond.notify_all()

    # -- reporting ------------------------------------------------------------------------
    def _public(self, d: dict) -> dict:
        out = {k: v for k, v in d.items() if not k.startswith("_")}
        out["attempts"] = [dict(a) for a in d["attempts"]]
        if self.paused and d["status"] == "pending":
            out["status"] = "paused"
        return out

    def list(self, event_id: str | None = None, type: str | None = None) -> list[dict]:
        with self.cond:
            source = self.by_event.get(event_id, []) if event_id else self.deliveries.values()
            return [
                self._public(d)
                for d in source
                if (not event_id or d["event_id"] == event_id)
                and (not type or d["event_type"] == type)
            ]

    def pending_count(self, event_id: str) -> int:
        with self.cond:
            endpoints = {}
            for d in self.by_event.get(event_id, []):
                ok = d["status"] == "succeeded"
                endpoints[d["_endpoint_id"]] = endpoints.get(d["_endpoint_id"], False) or ok
            return sum(1 for ok in endpoints.values() if not ok) + self.dropped.get(event_id, 0)

    def delivered(self, event_id: str) -> bool:
        return self.pending_count(event_id) == 0

    # -- workers --------------------------------------------------------------------------
    def _next_due(self) -> tuple[dict | None, float]:
        now = time.monotonic()
        wait = 0.5
        if self.paused:
            return None, wait
        due = None
        for d in self.pending.values():
            if d["status"] != "pending" or d["_busy"]:
                continue
            after = self.deliveries.get(d.get("_after") or "")
            if after is not None and not after["attempts"]:
                continue
            if d["_next_at"] <= now:
                if due is None or d["_next_at"] < due["_next_at"]:
                    due = d
            else:
                wait = min(wait, d["_next_at"] - now)
        return (due, 0) if due is not None else (None, wait)

    def _work(self) -> None:
        while True:
            with self.cond:
                while True:
                    if self._stopping:
                        return
                    d, wait = self._next_due()
                    if d is not None:
                        d["_busy"] = True
                        break
                    self.cond.wait(max(wait, 0.01))
            try:
                attempt = self._send(d)
            except Exception as exc:  # never let a worker die
                attempt = {"status_code": None, "error": repr(exc), "duration_ms": 0}
            self._record(d, attempt)

    def _send(self, d: dict) -> dict:
        secret = d["_secret"]
        if self.emu.faults.take_webhook("webhook_bad_signature", d["event_type"]):
            secret = "whsec_not_the_right_secret"
        body = d["_body"]
        header = sign(body, secret, int(time.time()))
        req = urllib.request.Request(
            d["endpoint_url"],
            data=body.encode("utf-8"),
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": USER_AGENT,
                "Stripe-Signature": header,
            },
        )
        started = time.monotonic()
        status, error = None, None
        try:
            with urllib.request.urlopen(req, timeout=self.emu.config.webhook_timeout) as resp:
                status = resp.status
                resp.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            error = f"HTTP {exc.code}"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        return {
            "status_code": status,
            "error": error,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
        }

    def _record(self, d: dict, attempt: dict) -> None:
        attempt = {"at": self.emu.clock.now(), **attempt}
        with self.cond:
            d["_busy"] = False
            if self.deliveries.get(d["id"]) is not d:  # reset while in flight
                return
            d["attempts"].append(attempt)
            code = attempt["status_code"]
            if code is not None and 200 <= code < 300:
                d["status"] = "succeeded"
                self.pending.pop(d["id"], None)
            else:
                schedule = self.emu.config.retry_schedule
                n = len(d["attempts"])
                if n <= len(schedule):
                    d["_next_at"] = time.monotonic() + schedule[n - 1]
                else:
                    d["status"] = "failed"
                    self.pending.pop(d["id"], None)
            self.cond.notify_all()
        log.info(
            "webhook %s %s -> %s (%s)", d["event_type"], d["endpoint_url"], attempt["status_code"],
            attempt["error"] or "ok",
        )  # fmt: skip
