"""The PSP's side of PayBridge, set up and checked: for each configured mode (test, live), a key of
that mode and one webhook endpoint at PUBLIC_BASE_URL/webhooks/<psp> that listens to exactly the
event types the intake handles, on the adapter's pinned API version.

`flask stripe setup` makes it so and a second run changes nothing; `flask stripe check` (and
production's start) only looks. It lives beside the intake: the endpoint is the intake's front
door, and the event types are its registry (`handled_event_types`, what app/wiring.py
registered), so no second list exists to drift.

The endpoint's signing secret is shown by Stripe only when it creates the endpoint. Setup hands it
back once (the CLI prints the exact line to set) and records a fingerprint of it in the endpoint's
metadata: the first 16 hex digits of its SHA-256, which say nothing usable about the secret but
let `check` tell whether the configured secret is the endpoint's. A lost secret cannot be asked
for again: `setup --rotate` recreates the endpoint, with a new one.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

from flask import Flask, current_app

from app.psp.base import PspError, PspWebhookEndpoint
from app.psp.factory import configured_modes, get_provider
from app.psp_events.intake import handled_event_types

log = logging.getLogger(__name__)

FINGERPRINT_KEY = "paybridge_secret_sha256"
ENDPOINT_DESCRIPTION = "PayBridge (flask stripe setup)"
EVERY_EVENT = "*"


def mode_name(livemode: bool) -> str:
    return "live" if livemode else "test"


def key_setting(livemode: bool) -> str:
    return f"STRIPE_{mode_name(livemode).upper()}_SECRET_KEY"


def secret_setting(livemode: bool) -> str:
    """The environment variable of a mode's webhook secrets (STRIPE_LIVE_WEBHOOK_SECRETS in
    the app's config)."""
    return f"STRIPE_{mode_name(livemode).upper()}_WEBHOOK_SECRET"


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def webhook_url() -> str:
    """Where the PSP must send its events: the webhook route (app/blueprints/webhooks) under
    the address the PSP reaches PayBridge at."""
    psp = current_app.config["PSP_NAME"]
    return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/webhooks/{psp}"


@dataclass(frozen=True)
class Problem:
    """What is wrong with one mode's setup, and what to run or set about it."""

    livemode: bool
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{mode_name(self.livemode)} mode: {self.what}. Fix: {self.fix}."


@dataclass
class ModeReport:
    livemode: bool
    endpoint: PspWebhookEndpoint | None = None
    changes: list[str] = field(default_factory=list)  # what setup changed at the PSP
    problems: list[Problem] = field(default_factory=list)
    # A new endpoint's signing secret: shown once by the PSP, never stored by PayBridge.
    new_secret: str | None = None


@dataclass
class Report:
    modes: list[ModeReport]

    @property
    def problems(self) -> list[Problem]:
        return [p for mode in self.modes for p in mode.problems]

    @property
    def ok(self) -> bool:
        return bool(self.modes) and not self.problems


def check(modes: list[bool] | None = None) -> Report:
    """Each configured mode's key, endpoint, events, API version and secret, changing nothing."""
    return Report([_check_mode(livemode) for livemode in _modes(modes)])


def set_up(modes: list[bool] | None = None, *, rotate: bool = False) -> Report:
    """Create or update each configured mode's endpoint; `rotate` recreates it (new secret)."""
    return Report([_set_up_mode(livemode, rotate) for livemode in _modes(modes)])


def readiness(report: Report) -> tuple[bool, str]:
    """A report as a readiness entry: (ok, what is wrong, or what was checked)."""
    if report.ok:
        modes = " and ".join(mode_name(m.livemode) for m in report.modes)
        return True, f"{modes} mode: key and webhook endpoint as PayBridge needs them"
    return False, "; ".join(str(p) for p in report.problems) or "no Stripe mode configured"


def _modes(modes: list[bool] | None) -> list[bool]:
    configured = configured_modes()
    return configured if modes is None else [m for m in configured if m in modes]


# -- looking ---------------------------------------------------------------------------------------


@dataclass
class _Found:
    """What the PSP holds for one mode: the key's problem, or the endpoints at our URL."""

    key_problem: Problem | None = None
    ours: list[PspWebhookEndpoint] = field(default_factory=list)


def _look(livemode: bool) -> _Found:
    provider = get_provider(livemode=livemode)
    setting = key_setting(livemode)
    try:
        key_livemode = provider.key_livemode()
        endpoints = provider.list_webhook_endpoints()
    except PspError as exc:
        if exc.http_status in (401, 403):
            return _Found(
                Problem(
                    livemode,
                    f"{setting} was refused by Stripe ({exc})",
                    f"set {setting} to a valid {mode_name(livemode)}-mode secret key "
                    "(Stripe dashboard, Developers, API keys)",
                )
            )
        return _Found(
            Problem(
                livemode,
                f"Stripe could not be asked ({type(exc).__name__}: {exc})",
                "check STRIPE_API_BASE and the network, then run `flask stripe check` again",
            )
        )
    if key_livemode != livemode:
        return _Found(
            Problem(
                livemode,
                f"{setting} is a {mode_name(key_livemode)}-mode key at Stripe",
                f"set {setting} to a {mode_name(livemode)}-mode key",
            )
        )
    url = webhook_url()
    return _Found(ours=[e for e in endpoints if e.url == url])


def _check_mode(livemode: bool) -> ModeReport:
    report = ModeReport(livemode)
    found = _look(livemode)
    if found.key_problem:
        report.problems.append(found.key_problem)
        return report
    if not found.ours:
        report.problems.append(
            Problem(
                livemode,
                f"no webhook endpoint at {webhook_url()}: PayBridge hears of nothing",
                "run `flask stripe setup`",
            )
        )
        return report
    if len(found.ours) > 1:
        report.problems.append(
            Problem(
                livemode,
                f"{len(found.ours)} webhook endpoints at {webhook_url()} "
                f"({', '.join(e.id for e in found.ours)}): Stripe sends every event to each",
                "run `flask stripe setup` (it keeps one and deletes the others)",
            )
        )
    report.endpoint = _keeper(found.ours, _secrets(livemode))
    report.problems += _endpoint_problems(report.endpoint, livemode)
    return report


def _secrets(livemode: bool) -> list[str]:
    mode = mode_name(livemode).upper()
    return list(current_app.config.get(f"STRIPE_{mode}_WEBHOOK_SECRETS") or [])


def _keeper(ours: list[PspWebhookEndpoint], secrets: list[str]) -> PspWebhookEndpoint:
    """The endpoint to keep of several at our URL: the one the configured secret signs for,
    else an enabled one, else the newest (the list is newest first)."""
    known = {fingerprint(s) for s in secrets}
    return min(
        ours,
        key=lambda e: (e.metadata.get(FINGERPRINT_KEY) not in known, not e.enabled),
    )


def _event_changes(endpoint: PspWebhookEndpoint) -> tuple[list[str], list[str]]:
    """(missing, extra): the handled types the endpoint does not send, and what it sends that
    PayBridge does not handle."""
    wanted = handled_event_types()
    listened = set(endpoint.enabled_events)
    missing = [] if EVERY_EVENT in listened else [t for t in wanted if t not in listened]
    extra = sorted(listened - set(wanted))
    return missing, extra


def _endpoint_problems(endpoint: PspWebhookEndpoint, livemode: bool) -> list[Problem]:
    problems = []
    at = f"endpoint {endpoint.id}"
    setup = "run `flask stripe setup`"
    if not endpoint.enabled:
        problems.append(Problem(livemode, f"{at} is disabled: Stripe sends it nothing", setup))
    missing, extra = _event_changes(endpoint)
    if missing:
        problems.append(
            Problem(
                livemode,
                f"{at} does not listen to {', '.join(missing)}: PayBridge never hears of them",
                setup,
            )
        )
    if extra:
        problems.append(
            Problem(
                livemode,
                f"{at} also listens to {', '.join(extra)}, which PayBridge does not handle",
                setup,
            )
        )
    pinned = get_provider(livemode=livemode).api_version
    if endpoint.api_version != pinned:
        version = endpoint.api_version or "the account's default"
        problems.append(
            Problem(
                livemode,
                f"{at} renders events in API version {version}, PayBridge is written for {pinned}",
                f"run `flask stripe setup --rotate --mode {mode_name(livemode)}` (Stripe sets an "
                f"endpoint's version only when it creates it; then set the new secret it prints "
                f"as {secret_setting(livemode)})",
            )
        )
    problems += _secret_problems(endpoint, livemode)
    return problems


def _secret_problems(endpoint: PspWebhookEndpoint, livemode: bool) -> list[Problem]:
    recorded = endpoint.metadata.get(FINGERPRINT_KEY)
    setting = secret_setting(livemode)
    rotate = f"`flask stripe setup --rotate --mode {mode_name(livemode)}`"
    if recorded is None:
        return [
            Problem(
                livemode,
                f"endpoint {endpoint.id} was not made by `flask stripe setup`: PayBridge cannot "
                f"tell whether {setting} is its signing secret",
                f"run {rotate} to recreate it with a secret PayBridge records, then set the "
                f"secret it prints as {setting}",
            )
        ]
    if not _secrets(livemode):
        return [
            Problem(
                livemode,
                f"{setting} is not set: every {mode_name(livemode)}-mode event is refused",
                f"set {setting} to the secret `flask stripe setup` printed when it created "
                f"endpoint {endpoint.id}, or run {rotate} for a new one",
            )
        ]
    if recorded not in {fingerprint(s) for s in _secrets(livemode)}:
        return [
            Problem(
                livemode,
                f"{setting} is not the signing secret of endpoint {endpoint.id} (its secret's "
                f"fingerprint is {recorded}): Stripe's events would be refused",
                f"set {setting} to the secret `flask stripe setup` printed when it created the "
                f"endpoint, or run {rotate} for a new one",
            )
        ]
    return []


# -- changing --------------------------------------------------------------------------------------


def _set_up_mode(livemode: bool, rotate: bool) -> ModeReport:
    report = ModeReport(livemode)
    found = _look(livemode)
    if found.key_problem:
        report.problems.append(found.key_problem)  # never set up endpoints with a wrong key
        return report
    provider = get_provider(livemode=livemode)
    ours = found.ours
    if rotate:
        for endpoint in ours:
            provider.delete_webhook_endpoint(endpoint.id)
            report.changes.append(f"deleted endpoint {endpoint.id} (rotating its secret)")
        ours = []
    if not ours:
        return _create(provider, report)

    keeper = _keeper(ours, _secrets(livemode))
    for endpoint in ours:
        if endpoint.id != keeper.id:
            provider.delete_webhook_endpoint(endpoint.id)
            report.changes.append(
                f"deleted endpoint {endpoint.id}: a second one at the same URL, which Stripe "
                f"would send every event to as well (kept {keeper.id})"
            )
    missing, extra = _event_changes(keeper)
    events = handled_event_types() if missing or extra else None
    enable = True if not keeper.enabled else None
    if events is not None or enable is not None:
        keeper = provider.update_webhook_endpoint(keeper.id, events=events, enabled=enable)
        if enable:
            report.changes.append(f"enabled endpoint {keeper.id} (it was disabled)")
        if missing:
            report.changes.append(f"endpoint {keeper.id} now listens to {', '.join(missing)}")
        if extra:
            report.changes.append(f"endpoint {keeper.id} no longer listens to {', '.join(extra)}")
    report.endpoint = keeper
    report.problems += _endpoint_problems(keeper, livemode)
    return report


def _create(provider, report: ModeReport) -> ModeReport:
    livemode = report.livemode
    events = handled_event_types()
    created = provider.create_webhook_endpoint(
        webhook_url(), events, description=ENDPOINT_DESCRIPTION
    )
    report.changes.append(
        f"created endpoint {created.id} at {created.url}: {len(events)} event types, "
        f"API version {created.api_version}"
    )
    report.new_secret = created.secret
    if created.secret:
        report.endpoint = provider.update_webhook_endpoint(
            created.id, metadata={FINGERPRINT_KEY: fingerprint(created.secret)}
        )
    else:  # a PSP that shows no secret on creation: nothing PayBridge can check it against
        report.endpoint = created
        report.problems.append(
            Problem(
                livemode,
                f"the PSP did not show endpoint {created.id}'s signing secret",
                f"copy it from the PSP's dashboard into {secret_setting(livemode)}",
            )
        )
    log.warning(
        "%s mode: created webhook endpoint %s at %s", mode_name(livemode), created.id, created.url
    )
    return report


# -- production's start --------------------------------------------------------------------------

_STARTUP_RESULT = "paybridge.stripe_startup_check"
# /readyz's entry while the check runs: not a failure (Stripe may simply be slow to answer), so
# a rollout's readiness gate does not wait on it; the detail says the verdict is still to come.
STARTUP_PENDING = (True, "pending: the start-up check of Stripe has not finished yet")


def startup_check_started(app: Flask) -> None:
    """The check is under way in this process: /readyz lists Stripe as pending until it ends."""
    app.extensions.setdefault(_STARTUP_RESULT, STARTUP_PENDING)


def startup_check(app: Flask) -> tuple[bool, str]:
    """Check Stripe for this process, log one loud ERROR line per problem, and keep the result
    for /readyz. Never raises: whatever Stripe says, the process keeps serving."""
    with app.app_context():
        try:
            report = check()
            result = readiness(report)
            for problem in report.problems:
                log.error("STRIPE IS NOT SET UP AS PAYBRIDGE NEEDS IT: %s", problem)
        except Exception as exc:  # a check that cannot run must say so, not end the process
            log.exception("STRIPE COULD NOT BE CHECKED: %s", type(exc).__name__)
            result = (False, f"the check itself failed ({type(exc).__name__}: {exc})")
    if result[0]:
        log.info("Stripe checked: %s", result[1])
    app.extensions[_STARTUP_RESULT] = result
    return result


def startup_readiness(app: Flask) -> tuple[bool, str] | None:
    """/readyz's entry: the start-up check's (ok, detail), STARTUP_PENDING while it runs; None
    when this process does not check (outside production: `flask stripe check`)."""
    return app.extensions.get(_STARTUP_RESULT)
