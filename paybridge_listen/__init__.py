"""Receive PayBridge's notifications on a developer's machine, as `stripe listen` does.

PayBridge cannot POST to a laptop's `localhost`; this pulls the merchant's events through the
Events API (`GET /api/v1/events`, docs/api.md) and forwards each, signed per Standard Webhooks
with a secret of its own, to a local URL: the client app's notification handler runs exactly
as it will in production.

    python -m paybridge_listen --api-key pbk_test_… --forward-to http://localhost:8000/hook

It needs Python and `requests` only: copy this package beside a client app, or run it from
PayBridge's tree; `flask notifications listen` is the same command inside PayBridge.

- It forwards the events written since it started (or since `--since`), oldest first, once
  each per run: a forward that fails (no answer, or not 2xx) is retried a few times, then left.
- The body is the notification's, byte for byte what PayBridge's delivery sends; the headers
  are `webhook-id` (the event id, for de-duplication), `webhook-timestamp` and
  `webhook-signature`, signed with the secret printed at start. The secret is stable per
  machine (kept in ~/.config/paybridge/listen-secret, readable by its owner only), so the
  client app is configured with it once; `--secret` uses another (the app's own, say).
- While the API cannot be reached it says so once and tries again, backing off to 30 s.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import requests

__all__ = [
    "ApiError",
    "EventFeed",
    "Forwarder",
    "Listener",
    "default_secret_path",
    "listen",
    "load_or_create_secret",
    "parse_since",
    "sign",
    "signing_secret",
]

VERSION = "1"
USER_AGENT = f"paybridge-listen/{VERSION}"
# An event is stamped when its transaction starts and visible when it commits: one committed
# late can be older than one already seen. Each poll looks back this far, and drops repeats.
LOOK_BACK = timedelta(seconds=60)
PAGE_SIZE = 100
MAX_BACKOFF_SECONDS = 30.0
SECRET_PATTERN = re.compile(r"^whsec_[A-Za-z0-9+/]+={0,2}$")


def default_secret_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "paybridge" / "listen-secret"


def load_or_create_secret(path: Path) -> str:
    """The machine's forwarding secret, made (readable by its owner only) on the first run."""
    try:
        secret = path.read_text().strip()
    except FileNotFoundError:
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")
        return secret
    if not SECRET_PATTERN.match(secret):
        raise ValueError(f"{path} holds no whsec_… secret; delete it to make a new one")
    return secret


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks `webhook-signature` of a body (`v1,<base64 HMAC-SHA256>`)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """`--since`: an ISO 8601 time (UTC without an offset) or a span back from now (90s, 15m,
    2h, 3d)."""
    span = re.fullmatch(r"(\d+)([smhd])", value.strip())
    if span:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[span.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: int(span.group(1))})
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--since {value!r}: give an ISO 8601 time (2026-12-07T10:00:00Z) or a span "
            "back from now (90s, 15m, 2h, 3d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_created(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class ApiError(Exception):
    """The Events API refused the request; `fatal`: asking again will not help (a bad key)."""

    def __init__(self, message: str, *, fatal: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.retry_after = retry_after


@dataclass
class EventFeed:
    """The merchant's new events, polled through the Events API with a look-back window;
    each event is handed out once, oldest first."""

    api_base: str
    api_key: str
    types: str | None = None  # the API's `type` filter: "payment.*,refund.failed"
    since: datetime | None = None  # None: from the API's own "now" (its Date header)
    timeout: float = 10.0
    session: requests.Session = field(default_factory=requests.Session)
    _window_start: datetime | None = None
    _seen: dict[str, datetime] = field(default_factory=dict)  # id → created, in the window

    def __post_init__(self) -> None:
        if self.since is not None and self.since.tzinfo is None:
            self.since = self.since.replace(tzinfo=UTC)  # a time without a zone is UTC

    @property
    def events_url(self) -> str:
        return self.api_base.rstrip("/") + "/api/v1/events"

    def poll(self) -> list[dict]:
        """The events not handed out before, oldest first (ApiError when the API refuses)."""
        if self._window_start is None:
            self._window_start = self.since or self._api_now()
        fresh = [
            event
            for event in self._read_window(self._window_start)
            if event["id"] not in self._seen
        ]
        fresh.reverse()  # oldest first, as they happened
        for event in fresh:
            self._seen[event["id"]] = _parse_created(event["created"])
        if self._seen:
            newest = max(self._seen.values())
            self._window_start = max(self._window_start, newest - LOOK_BACK)
            # Forget what the window has passed: it is never read again.
            self._seen = {i: c for i, c in self._seen.items() if c >= self._window_start}
        return fresh

    def _read_window(self, start: datetime) -> Iterator[dict]:
        params: dict = {"limit": PAGE_SIZE, "created_gte": _iso(start)}
        if self.types:
            params["type"] = self.types
        while True:
            page = _events_page(self._get(params), self.events_url)
            yield from page["data"]
            if not page.get("has_more"):
                return
            params["starting_after"] = page["next_cursor"]

    def _api_now(self) -> datetime:
        """The API's clock, so that "from now" does not depend on this machine's."""
        response = self._get({"limit": 1})
        try:
            return parsedate_to_datetime(response.headers["Date"])
        except (KeyError, TypeError, ValueError):
            return datetime.now(UTC)

    def _get(self, params: dict) -> requests.Response:
        try:
            response = self.session.get(
                self.events_url,
                params=params,
                headers={"Authorization": f"Bearer {self.api_key}", "User-Agent": USER_AGENT},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            message = f"PayBridge at {self.api_base} did not answer ({_short(exc)})"
            raise ApiError(message, fatal=False) from None
        if response.ok:
            return response
        code, message = _error_of(response)
        retry_after = response.headers.get("Retry-After")
        retryable = response.status_code == 429 or response.status_code >= 500
        raise ApiError(
            f"PayBridge answered {response.status_code} {code}: {message}",
            fatal=not retryable,
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )


def _events_page(response: requests.Response, url: str) -> dict:
    """The answer as a page of events, or a fatal ApiError: --api-base is not a PayBridge."""
    try:
        page = response.json()
    except ValueError:
        page = None
    events = page.get("data") if isinstance(page, dict) else None
    if isinstance(events, list) and all(
        isinstance(e, dict) and {"id", "type", "created"} <= e.keys() for e in events
    ):
        return page
    raise ApiError(
        f"{url} answered something else than PayBridge's events: check --api-base", fatal=True
    )


def _error_of(response: requests.Response) -> tuple[str, str]:
    try:
        error = response.json()["error"]
        details = error.get("details")
        message = error["message"] + (f" {json.dumps(details)}" if details else "")
        return error["code"], message
    except (ValueError, KeyError, TypeError, AttributeError):
        return "HTTP", f"{response.reason} (not PayBridge's JSON: check --api-base)"


@dataclass
class ForwardResult:
    event: dict
    status: int | None  # the local URL's answer; None: no answer
    error: str | None
    attempts: int
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Forwarder:
    """POSTs an event to the local URL as PayBridge would deliver it, signed with `secret`."""

    url: str
    secret: str
    retries: int = 3  # after the first attempt
    timeout: float = 10.0
    backoff_seconds: float = 1.0
    session: requests.Session = field(default_factory=requests.Session)
    sleep: Callable[[float], object] = time.sleep

    def forward(self, event: dict, on_attempt: Callable[[ForwardResult], object]) -> ForwardResult:
        # What PayBridge's delivery sends: the body without the API's `object` and `created`.
        body = {k: v for k, v in event.items() if k not in ("object", "created")}
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        for attempt in range(1, self.retries + 2):
            result = self._post(event, raw, attempt)
            on_attempt(result)
            if result.ok or attempt > self.retries:
                return result
            self.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _post(self, event: dict, raw: bytes, attempt: int) -> ForwardResult:
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": event["id"],
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.secret, event["id"], timestamp, raw),
        }
        started = time.monotonic()
        try:
            response = self.session.post(self.url, data=raw, headers=headers, timeout=self.timeout)
            status, error = response.status_code, None
            response.close()
        except requests.RequestException as exc:
            status, error = None, _short(exc)
        took = int((time.monotonic() - started) * 1000)
        return ForwardResult(event, status, error, attempt, took)


def _short(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "timed out", "Name or service not known"):
        if marker in text:
            return marker.lower()
    return text[:200]


@dataclass
class Listener:
    """Poll, forward, repeat, until `stop` is set; `say` prints a line for the developer."""

    feed: EventFeed
    forwarder: Forwarder
    say: Callable[[str], object] = print
    interval: float = 2.0
    stop: threading.Event = field(default_factory=threading.Event)
    on_ready: Callable[[], object] | None = None  # after the first poll the API answered
    forwarded: int = 0
    failed: int = 0
    polls: int = 0

    def run(self) -> None:
        """Returns when stopped; raises ApiError when the API refuses for good (a bad key)."""
        backoff = self.interval
        down_since: float | None = None
        while not self.stop.is_set():
            try:
                events = self.feed.poll()
                self.polls += 1
                if self.polls == 1 and self.on_ready is not None:
                    self.on_ready()
            except ApiError as error:
                if error.fatal:
                    raise
                if down_since is None:
                    down_since = time.monotonic()
                    self.say(f"! {error}; trying again (every {MAX_BACKOFF_SECONDS:.0f} s at most)")
                backoff = min(max(backoff * 2, error.retry_after or 0), MAX_BACKOFF_SECONDS)
                self.stop.wait(backoff)
                continue
            if down_since is not None:
                self.say(f"PayBridge answers again (after {time.monotonic() - down_since:.0f} s)")
                down_since, backoff = None, self.interval
            for event in events:
                if self.stop.is_set():
                    return
                result = self.forwarder.forward(event, self._report)
                if result.ok:
                    self.forwarded += 1
                else:
                    self.failed += 1
            self.stop.wait(self.interval)

    def _report(self, result: ForwardResult) -> None:
        event = result.event
        answer = (
            f"[{result.status}]" if result.status is not None else f"[no answer: {result.error}]"
        )
        retry = ""
        if not result.ok:
            last = result.attempts > self.forwarder.retries
            retry = " gave up" if last else f" (attempt {result.attempts}, retrying)"
        self.say(
            f"{event['created'][:19].replace('T', ' ')}  --> {event['type']} [{event['id']}]  "
            f"<-- {answer} {result.duration_ms} ms{retry}"
        )


def signing_secret(secret: str | None, secret_file: Path) -> str:
    """The secret given, or this machine's; ValueError saying what is wrong."""
    if secret:
        if not SECRET_PATTERN.match(secret):
            raise ValueError("--secret must be a whsec_… secret (base64 after the prefix)")
        return secret
    return load_or_create_secret(secret_file)


def listen(
    *,
    api_key: str,
    forward_to: str,
    api_base: str,
    types: str | None,
    since: datetime | None,
    secret: str,
    secret_origin: str,
    retries: int = 3,
    interval: float = 2.0,
    say: Callable[[str], object] = print,
    listener_ready: Callable[[Listener], object] | None = None,
) -> int:
    """Run until interrupted (0), or until the API refuses for good (2, saying why)."""
    mode = "live" if api_key.startswith("pbk_live_") else "test"

    def ready() -> None:
        say(
            f"Ready! Forwarding PayBridge's {mode}-mode events from {api_base} to {forward_to}"
            + (f" (types: {types})" if types else "")
            + (f", since {_iso(since)}" if since else ", from now on")
        )

    listener = Listener(
        EventFeed(api_base, api_key, types=types, since=since),
        Forwarder(forward_to, secret, retries=retries),
        say=say,
        interval=interval,
        on_ready=ready,
    )
    say(f"Your webhook signing secret is {secret} (from {secret_origin})")
    say(f"Asking PayBridge at {api_base} for events… (Ctrl-C stops)")
    if listener_ready is not None:
        listener_ready(listener)
    try:
        listener.run()
    except ApiError as error:
        say(f"! {error}")
        return 2
    except KeyboardInterrupt:
        pass
    say(f"Stopped: {listener.forwarded} forwarded, {listener.failed} failed.")
    return 0
