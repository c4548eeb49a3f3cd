"""A small client for PayBridge's JSON API (v1) — the part of this shop to copy into yours.

    client = PayBridgeClient("https://paybridge.example.com", "pbk_…")
    payment = client.create_payment({...}, idempotency_key="order-1042-create")
    redirect(payment["checkout_url"])

Every method returns PayBridge's JSON answer as a dict, or raises PayBridgeError carrying the
answer's `{"error": {"code", "message"}}` (or UNREACHABLE when no answer came at all). An error's
`retryable` says whether the same call may succeed later; repeat a create with the same
Idempotency-Key and it is still one payment. The API itself is documented in docs/api.md.
"""

from __future__ import annotations

import threading
import time

import requests

# PayBridge's error codes (docs/api.md, "Errors") worth trying again, plus this client's own.
RETRYABLE_CODES = frozenset(
    {
        "REQUEST_IN_PROGRESS",
        "RATE_LIMITED",
        "INTERNAL_ERROR",
        "PSP_ERROR",
        "PSP_UNAVAILABLE",
        "PSP_RATE_LIMITED",
        "SERVICE_UNAVAILABLE",
        "UNREACHABLE",
    }
)


class PayBridgeError(Exception):
    """PayBridge refused the call, or could not be reached (code UNREACHABLE)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        http_status: int | None = None,
        details: dict | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.details = details or {}
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES


class PayBridgeClient:
    """One merchant's API key against one PayBridge; safe to share between threads (each
    thread gets its own HTTP session, which keeps its connections to PayBridge open)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: tuple[float, float] = (3.05, 20.0),
    ) -> None:
        self.api_url = base_url.rstrip("/") + "/api/v1"
        # (connect, read): creating a payment waits for the PSP, and for a parallel request
        # with the same Idempotency-Key (up to ~5 s), so reads get more room than connects.
        self.timeout = timeout
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self._per_thread = threading.local()

    @property
    def http(self) -> requests.Session:
        # requests promises no thread safety for one Session: one per thread.
        session = getattr(self._per_thread, "session", None)
        if session is None:
            session = self._per_thread.session = requests.Session()
            session.headers.update(self._auth)
        return session

    # --- payments ---------------------------------------------------------------------------

    def create_payment(
        self, payment: dict, *, idempotency_key: str, wait_in_progress: float = 10.0
    ) -> dict:
        """Create a payment exactly once per key; the same key and body answer the same payment.

        A twin request still running under the same key (a double click) is waited for, up to
        `wait_in_progress` seconds, instead of failing this one.
        """
        deadline = time.monotonic() + wait_in_progress
        while True:
            try:
                return self._call(
                    "POST", "/payments", json=payment, headers={"Idempotency-Key": idempotency_key}
                )
            except PayBridgeError as error:
                pause = error.retry_after or 0.5
                if error.code != "REQUEST_IN_PROGRESS" or time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)

    def get_payment(self, payment_id: str) -> dict:
        """The payment with its `status_history` and `refunds`."""
        return self._call("GET", f"/payments/{payment_id}")

    def expire_payment(self, payment_id: str) -> dict:
        """Stop a payment that is not final: PayBridge expires its checkout; it becomes FAILED."""
        return self._call("POST", f"/payments/{payment_id}/expire")

    # --- subscriptions ----------------------------------------------------------------------

    def get_subscription(self, subscription_id: str) -> dict:
        """The subscription with every payment it made (the first and each renewal)."""
        return self._call("GET", f"/subscriptions/{subscription_id}")

    def cancel_subscription(self, subscription_id: str, *, at_period_end: bool) -> dict:
        """Cancel now, or (at_period_end) stop charging after the period already paid for."""
        return self._call(
            "POST",
            f"/subscriptions/{subscription_id}/cancel",
            json={"at_period_end": at_period_end},
        )

    # --- notification endpoints -------------------------------------------------------------

    def create_notification_endpoint(
        self, *, url: str, enabled_events: list[str], description: str | None = None
    ) -> dict:
        """A new endpoint receiving `enabled_events` at `url`; the answer's `secret` (whsec_…)
        is shown this once: store it."""
        body = {"url": url, "enabled_events": enabled_events, "description": description}
        return self._call("POST", "/notification_endpoints", json=body)

    # --- events -----------------------------------------------------------------------------

    def list_events(self, **params) -> dict:
        """One page of the merchant's events, newest first (`type`, `created_gte`,
        `created_lte`, `limit`, `starting_after`): every notification, for 30 days."""
        return self._call("GET", "/events", params=params)

    # --- the one place that talks HTTP ------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: dict | None = None,
        headers: dict | None = None,
        params: dict | None = None,
    ) -> dict:
        try:
            response = self.http.request(
                method,
                self.api_url + path,
                json=json,
                headers=headers,
                params=params,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            # Refused, timed out, reset: nothing is known about the outcome, so a create must be
            # retried with the same Idempotency-Key, never a new one.
            raise PayBridgeError("UNREACHABLE", f"PayBridge did not answer: {exc}") from exc
        if response.ok:
            return response.json()
        raise _error_from(response)


def _error_from(response: requests.Response) -> PayBridgeError:
    try:
        error = response.json()["error"]
        code, message = error["code"], error["message"]
    except (ValueError, KeyError, TypeError):
        # Not PayBridge's JSON (a proxy's error page, say): judge by the HTTP status alone.
        code = "SERVICE_UNAVAILABLE" if response.status_code >= 500 else "UNEXPECTED_RESPONSE"
        return PayBridgeError(
            code, f"HTTP {response.status_code}", http_status=response.status_code
        )
    retry_after = response.headers.get("Retry-After")
    return PayBridgeError(
        code,
        message,
        http_status=response.status_code,
        details=error.get("details"),
        retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
    )
