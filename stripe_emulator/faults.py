"""Fault injection: the next N API calls or webhook deliveries misbehave on purpose."""

from __future__ import annotations

import itertools
import threading

from .errors import invalid
from .validation import REFUND_FAILURE_REASONS, json_number, json_string

API_KINDS = {"http_500", "http_429", "http_400", "hang", "lose_response"}
WEBHOOK_KINDS = {
    "webhook_duplicate",
    "webhook_out_of_order",
    "webhook_bad_signature",
    "webhook_drop",
}
# The next N refunds: fail (pending, then failed when due) / stay pending until a control call.
REFUND_KINDS = {"refund_fail", "refund_pending"}


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[dict] = []
        self._ids = itertools.count(1)

    def add(self, spec: dict) -> dict:
        kind = json_string(spec, "kind")
        if kind not in API_KINDS | WEBHOOK_KINDS | REFUND_KINDS:
            kinds = ", ".join(sorted(API_KINDS | WEBHOOK_KINDS | REFUND_KINDS))
            raise invalid("kind", f"Unknown fault kind: {kind!r} (one of {kinds})")
        count = json_number(spec, "count", 1, integer=True, minimum=1)
        seconds = json_number(spec, "seconds", 30, minimum=0)
        for key in ("path", "method", "code", "message", "event_type"):
            json_string(spec, key)
        reason = json_string(spec, "failure_reason") or "expired_or_canceled_card"
        if reason not in REFUND_FAILURE_REASONS:
            raise invalid(
                "failure_reason", f"failure_reason must be one of {REFUND_FAILURE_REASONS}"
            )
        fault = {
            "id": f"fault_{next(self._ids)}",
            "kind": kind,
            "remaining": count,
            "path": spec.get("path"),
            "method": (spec.get("method") or "").upper() or None,
            # Webhook kinds: only events of this type (None: the next of any type).
            "event_type": spec.get("event_type") or None,
            "seconds": seconds,
            "failure_reason": reason,
            # http_400: the refusal Stripe gives a request it will not serve for this account.
            "code": str(spec.get("code") or "parameter_invalid"),
            "message": str(spec.get("message") or "This request was refused (injected fault)."),
        }
        with self._lock:
            self._faults.append(fault)
        return dict(fault)

    def list(self) -> list[dict]:
        with self._lock:
            return [dict(f) for f in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take(self, match) -> dict | None:
        with self._lock:
            for fault in self._faults:
                if match(fault):
                    fault["remaining"] -= 1
                    if fault["remaining"] <= 0:
                        self._faults.remove(fault)
                    return dict(fault)
        return None

    def take_api(self, method: str, path: str) -> dict | None:
        return self._take(
            lambda f: (
                f["kind"] in API_KINDS
                and (not f["path"] or path.startswith(f["path"]))
                and (not f["method"] or f["method"] == method)
            )
        )

    def take_refund(self) -> dict | None:
        return self._take(lambda f: f["kind"] in REFUND_KINDS)

    def take_webhook(self, kind: str, event_type: str | None = None) -> bool:
        return (
            self._take(lambda f: f["kind"] == kind and f["event_type"] in (None, event_type))
            is not None
        )
