"""PayBridge's settings: every environment variable it reads, typed and bounded, read and
checked once when the app is built (DESIGN.md, "Configuration"; the README's table).

One class per role: `DevelopmentConfig` (the demo: SQLite, the emulator, generated secrets),
`TestingConfig` (the suite) and `ProductionConfig` (real money: required secrets, refuses
unsafe values). Each is a pydantic-settings model with one line per setting: its type and
bounds, then its default; a role redeclares only what differs. Every value that does not fit
is refused at once, each line naming the variable and what it accepts (ConfigError), and
production's own refusals join the same list. `create_app` copies every upper-case attribute
into `app.config` (Flask's `from_object`) under the names the code reads.

To add a setting: a line in `Config` (or in the role whose default differs), and a row in the
README's configuration table (tests/security/test_settings.py holds them to each other).
"""

from __future__ import annotations

import ipaddress
import math
import os
import secrets
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, field_validator
from pydantic import model_validator as after_all
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# Values that match the local Stripe emulator and the demo; never accepted in production.
EMULATOR_API_BASE = "http://127.0.0.1:12111"
EMULATOR_SECRET_KEY = "sk_test_emulator"
EMULATOR_WEBHOOK_SECRET = "whsec_paybridge_demo_secret"
# The suite runs live mode against the emulator too (its objects say livemode: true for these).
EMULATOR_LIVE_SECRET_KEY = "sk_live_emulator"
EMULATOR_LIVE_WEBHOOK_SECRET = "whsec_paybridge_live_test_secret"
DEMO_PASSWORDS = frozenset({"demo-password", "operator-password"})  # scripts/demo.sh's logins
STRIPE_API_BASE = "https://api.stripe.com"

INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"

# Stripe's bounds on a Checkout Session's lifetime (30 min .. 24 h), plus a minute's margin for
# the round trip: outside them Stripe would refuse every payment.
CHECKOUT_SESSION_TTL_RANGE = (31 * 60, 24 * 3600)

# A secret key or bearer token: at least this long, and not a word, a pattern or a placeholder.
STRONG_SECRET_LENGTH = 32
PLACEHOLDERS = ("change", "example", "placeholder", "not-for-production", "secret", "password")
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"


class ConfigError(RuntimeError):
    """The environment holds settings PayBridge cannot start safely with; `problems` maps each
    refused variable to why, and the message lists them all."""

    def __init__(self, problems: dict[str, str], env_name: str | None = None) -> None:
        self.problems = problems
        where = f" (PAYBRIDGE_ENV={env_name})" if env_name else ""
        lines = "\n".join(f"  {name}: {why}" for name, why in problems.items())
        count = f"{len(problems)} setting{'s' if len(problems) != 1 else ''}"
        super().__init__(f"PayBridge cannot start{where}: {count} refused\n{lines}")


# --- the kinds of value, each saying what it accepts ---------------------------------------------


@dataclass(frozen=True)
class Accepts:
    """What a setting accepts, in words, where its type and bounds do not say it."""

    text: str


@dataclass(frozen=True)
class Secret:
    """Marks a setting whose value never appears in a refusal (or anywhere else)."""


SECRET = Secret()


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _stripe_key(mode: str):
    """A secret (sk_) or restricted (rk_) key of one mode: a live key set as the test key
    would send test payments to real cards."""

    def check(value: str) -> str:
        if not value.startswith((f"sk_{mode}_", f"rk_{mode}_")) or len(value) <= 8:
            raise ValueError(f"is not a {mode}-mode Stripe key (sk_{mode}_…, rk_{mode}_…)")
        return value

    return check


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("is not an http:// or https:// URL with a host")
    return value.rstrip("/")


def _uri(schemes: tuple[str, ...] | None):
    def check(value: str) -> str:
        scheme, separator, _ = value.partition("://")
        if not separator or (schemes and scheme not in schemes):
            raise ValueError("is not a URL of a kind this setting takes")
        return value

    return check


def _database_url(value: str) -> str:
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError("is not a database URL") from None
    backend, _, driver = url.drivername.partition("+")
    if backend not in ("sqlite", "mysql", "mariadb"):
        raise ValueError(f"names {backend}, a database PayBridge does not run on")
    if backend != "sqlite" and driver != "pymysql":
        raise ValueError(f"names the driver {driver or '(none)'}, not pymysql, the one installed")
    return value


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("is not an IP address") from None


def _days_or_forever(minimum: int):
    """0 (keep forever) or at least `minimum` days."""

    def check(value: int) -> int:
        if 0 < value < minimum:
            raise ValueError(f"is under {minimum} days")
        return value

    return check


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError("is not a network in CIDR notation") from None


Count = Annotated[int, Field(ge=1)]  # things of which there must be at least one
Count0 = Annotated[int, Field(ge=0)]  # 0 is meaningful (no retries, no proxies, no overflow)
Interval = Annotated[int, Field(ge=0), Accepts("whole seconds ≥ 0 (0 turns the job off)")]
Seconds = Annotated[float, Field(gt=0)]
Retries = Annotated[int, Field(ge=0, le=10)]
Flag = bool
HttpUrl = Annotated[str, AfterValidator(_http_url), Accepts("an http:// or https:// URL")]
PublicUrl = Annotated[
    str,
    AfterValidator(_http_url),
    Accepts("the https:// URL shoppers and Stripe reach PayBridge at (http:// outside production)"),
]
SecretKey = Annotated[
    str,
    SECRET,
    Accepts(f"a random value; in production {STRONG_SECRET_LENGTH}+ characters ({GENERATE_HINT})"),
]
StripeTestKey = Annotated[
    str,
    AfterValidator(_stripe_key("test")),
    SECRET,
    Accepts("a test-mode Stripe secret or restricted key: sk_test_… or rk_test_…"),
]
StripeLiveKey = Annotated[
    str,
    AfterValidator(_stripe_key("live")),
    SECRET,
    Accepts("a live-mode Stripe secret or restricted key: sk_live_… or rk_live_…"),
]
Password = Annotated[str, SECRET, Accepts("a password that is not one of the demo's")]
RedisUrl = Annotated[
    str,
    AfterValidator(_uri(("redis", "rediss", "unix"))),
    SECRET,
    Accepts("redis://[:password@]host:port/db, rediss://… or unix://…"),
]
StorageUri = Annotated[
    str,
    AfterValidator(_uri(None)),
    SECRET,
    Accepts(
        "a storage URI of the limits library: redis://…, rediss://… (memory:// outside production)"
    ),
]
DatabaseUrl = Annotated[
    str,
    AfterValidator(_database_url),
    Field(validation_alias="DATABASE_URL"),
    SECRET,
    Accepts(
        "mysql+pymysql://user:password@host/database?charset=utf8mb4 (MySQL/MariaDB), "
        "or sqlite:///path outside production"
    ),
]
WebhookSecrets = Annotated[
    list[str],
    NoDecode,
    BeforeValidator(_comma_list),
    Field(min_length=1),
    SECRET,
    Accepts("whsec_… endpoint secrets, comma-separated while rotating"),
]


def webhook_secrets(mode: str, default: list[str] | None = None) -> Any:
    """A mode's endpoint secrets, read from STRIPE_<MODE>_WEBHOOK_SECRET (one or several)."""
    return Field(default, validation_alias=f"STRIPE_{mode}_WEBHOOK_SECRET")


Schedule = Annotated[
    list[Annotated[int, Field(ge=1)]],
    NoDecode,
    BeforeValidator(_comma_list),
    Field(min_length=1),
    Accepts("whole numbers of seconds ≥ 1, comma-separated (10,60,300)"),
]
QueuePrefix = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=64),
    Accepts("up to 64 letters, digits, '_', '.' or '-'"),
]
LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
    BeforeValidator(lambda value: value.upper() if isinstance(value, str) else value),
]
LogFormat = Annotated[
    Literal["text", "json"],
    BeforeValidator(lambda value: value.lower() if isinstance(value, str) else value),
]
Port = Annotated[int, Field(ge=0, le=65535), Accepts("a port from 1 to 65535, or 0 for none")]
ListenAddress = Annotated[
    str,
    AfterValidator(_ip_address),
    Accepts("an IP address to listen on: 127.0.0.1 (this host only), 0.0.0.0, a private address"),
]
Networks = Annotated[
    list[Annotated[str, AfterValidator(_network)]],
    NoDecode,
    BeforeValidator(_comma_list),
    Accepts("networks in CIDR notation, comma-separated (10.20.0.0/16,fd00::/8); empty: none"),
]
# How many days a kind of record is kept: 0 keeps it forever. PSP events at least 30: Stripe
# resends an event for up to 3 days and lists it for 30, and an event purged sooner could come
# back and be stored and applied again.
RetentionDays = Annotated[int, Field(ge=0), Accepts("whole days ≥ 0 (0: keep forever)")]
PspEventDays = Annotated[
    int,
    Field(ge=0),
    AfterValidator(_days_or_forever(30)),
    Accepts("whole days: 0 (keep forever) or ≥ 30 (Stripe lists events for 30 days)"),
]
CheckoutLifetime = Annotated[
    int, Field(ge=CHECKOUT_SESSION_TTL_RANGE[0], le=CHECKOUT_SESSION_TTL_RANGE[1])
]


def default_database_url() -> str:
    return f"sqlite:///{INSTANCE_DIR / 'paybridge.sqlite3'}"


# Settings that were replaced, refused with the name to set instead.
RENAMED_SETTINGS = {
    "STRIPE_SECRET_KEY": "STRIPE_LIVE_SECRET_KEY or STRIPE_TEST_SECRET_KEY (by the key's mode)",
    "STRIPE_WEBHOOK_SECRET": "STRIPE_LIVE_WEBHOOK_SECRET or STRIPE_TEST_WEBHOOK_SECRET",
    "IDEMPOTENCY_PURGE_INTERVAL_SECONDS": "RETENTION_INTERVAL_SECONDS (one purge for all kinds)",
}


def renamed_settings_set() -> dict[str, str]:
    """A refusal for each replaced setting still in the environment: silently ignoring one
    would leave a deployment without the Stripe mode it had."""
    return {
        old: f"was replaced: set {new}"
        for old, new in RENAMED_SETTINGS.items()
        if os.environ.get(old)
    }


# --- the roles -----------------------------------------------------------------------------------


class Config(BaseSettings):
    """Every setting, with the defaults shared by all roles; subclasses change what differs."""

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, extra="ignore")

    ENV_NAME: ClassVar[str] = "base"
    TESTING: ClassVar[bool] = False
    DEBUG: ClassVar[bool] = False

    # Where PayBridge is, what it stores in, who may read its metrics.
    SECRET_KEY: SecretKey | None = None
    SQLALCHEMY_DATABASE_URI: DatabaseUrl = Field(default_factory=default_database_url)
    DB_POOL_SIZE: Count = 10
    DB_MAX_OVERFLOW: Count0 = 20
    REDIS_URL: RedisUrl = "redis://127.0.0.1:6379/0"
    PUBLIC_BASE_URL: PublicUrl = "http://127.0.0.1:5000"
    # Proxies in front of the app (load balancer): trust this many X-Forwarded-* hops, so
    # audit IPs and generated URLs are the client's, not the proxy's.
    PROXY_FIX_HOPS: Annotated[int, Field(ge=0, le=5)] = 0
    LOG_LEVEL: LogLevel = "INFO"
    # Lines as text (a person at a terminal) or one JSON object each (a log collector), and one
    # access line per web request (app/logging_setup.py).
    LOG_FORMAT: LogFormat = "text"
    ACCESS_LOG: Flag = True
    # Bearer token a Prometheus scrape of /metrics sends; unset: /metrics answers anyone.
    METRICS_TOKEN: SecretKey | None = None

    # The PSP. Stripe keeps test and live data apart, each mode with its own keys and webhook
    # endpoint; a mode is configured when its key is set, and a payment's mode follows the API
    # key that created it. Each mode's endpoint secrets: several, comma-separated, while rotating.
    PSP_NAME: Literal["stripe"] = "stripe"
    STRIPE_TEST_SECRET_KEY: StripeTestKey | None = None
    STRIPE_LIVE_SECRET_KEY: StripeLiveKey | None = None
    STRIPE_TEST_WEBHOOK_SECRETS: WebhookSecrets | None = webhook_secrets("TEST")
    STRIPE_LIVE_WEBHOOK_SECRETS: WebhookSecrets | None = webhook_secrets("LIVE")
    STRIPE_API_BASE: HttpUrl = STRIPE_API_BASE
    STRIPE_TIMEOUT_SECONDS: Seconds = 10.0
    STRIPE_MAX_NETWORK_RETRIES: Retries = 2
    STRIPE_WEBHOOK_TOLERANCE_SECONDS: Count = 300
    CHECKOUT_SESSION_TTL_SECONDS: CheckoutLifetime = 3600
    # Circuit breaker towards the PSP: after N consecutive failures, fail fast for T seconds.
    PSP_BREAKER_FAIL_MAX: Count = 5
    PSP_BREAKER_RESET_SECONDS: Count = 30

    # Idempotency: how long a request waits for a concurrent one with the same key, how long
    # completed keys are honoured (Stripe: at least 24 h; then retention purges them).
    IDEMPOTENCY_WAIT_SECONDS: Seconds = 5.0
    IDEMPOTENCY_RETENTION_HOURS: Annotated[int, Field(ge=24)] = 48
    # How often the worker learns the payment intents of paid renewals (refunds need them).
    SUBSCRIPTION_UPKEEP_INTERVAL_SECONDS: Interval = 60
    # How often the worker learns how webhook-moved payments were paid (their charge).
    PAYMENT_METHOD_LOOKUP_INTERVAL_SECONDS: Interval = 10
    # The overview's payment rollup (app/reporting/rollup.py): how often the worker folds the
    # changed payments in, and how long a transaction may take from stamping updated_at to its
    # commit (each run re-reads that much before its watermark, so a late commit is not missed).
    ROLLUP_INTERVAL_SECONDS: Interval = 60
    ROLLUP_COMMIT_LAG_SECONDS: Annotated[int, Field(ge=0, le=3600)] = 300
    # The transactions list on MariaDB: the index entries one page's query reads at most
    # before it stops and says so (filters whose rows barely overlap would otherwise walk every
    # row of one of them: status FAILED with method card read 440k entries, 650 ms, at 1M).
    # The CSV export reads on.
    LIST_ROWS_EXAMINED_MAX: Annotated[int, Field(ge=1000)] = 10_000

    # Notifications to client apps: delays between attempts (then failed), each POST's time;
    # POSTs at once per worker process (threads that wait on client apps, not on the CPU), how
    # often an idle pump looks for due ones; RQ jobs one worker process runs at once (keep it
    # plus one, the pump, under DB_POOL_SIZE + DB_MAX_OVERFLOW).
    NOTIFY_RETRY_SCHEDULE: Schedule = [10, 60, 300, 1800, 7200, 21600]
    NOTIFY_TIMEOUT_SECONDS: Seconds = 5.0
    NOTIFY_CONCURRENCY: Count = 64
    # Of those, what one endpoint may hold while it is slow or not yet heard from (fair
    # delivery: a hanging endpoint cannot take the pump); one that answers fast borrows any.
    NOTIFY_ENDPOINT_CONCURRENCY: Count = 4
    NOTIFY_POLL_SECONDS: Seconds = 0.5
    # An endpoint whose every attempt failed for this long is disabled (as Stripe: 3 days);
    # 0: never.
    NOTIFY_ENDPOINT_DISABLE_AFTER_SECONDS: Interval = 3 * 24 * 3600
    # After a rotation the previous signing secret keeps signing this long (as Stripe: ≤ 24 h).
    NOTIFY_SECRET_ROTATION_GRACE_SECONDS: Annotated[int, Field(ge=0, le=86400)] = 24 * 3600
    WORKER_CONCURRENCY: Count = 4
    # Each worker process serves its own /metrics (app/runtime/metrics_server.py), so a worker
    # on another host than gunicorn is scraped too: its port (0: none; several workers on one
    # host each take `--metrics-port`) and address, this host only unless set; METRICS_TOKEN
    # guards it as it guards web's.
    WORKER_METRICS_PORT: Port = 9101
    WORKER_METRICS_HOST: ListenAddress = "127.0.0.1"

    # --- the deployment's shape ---
    # Processes per host and hosts sharing the database, for the connection budget `flask
    # doctor` holds against the server's max_connections (app/runtime/database_server.py).
    # The Procfile's web runs WEB_PROCESSES gunicorn workers of WEB_THREADS threads; run
    # WORKER_PROCESSES `python worker.py` per host (tests/core/test_deploy_kit.py holds the
    # Procfile's defaults and the deploy kit's to these).
    WEB_PROCESSES: Count = 8
    WEB_THREADS: Count = 8
    WORKER_PROCESSES: Count = 1
    DEPLOY_HOSTS: Count = 1

    # --- notify-URL guard ---
    # Non-public networks notify URLs may reach anyway (on-premises client apps): every other
    # loopback, private, link-local, multicast or unresolvable target is refused, when a URL
    # is saved and at each delivery (app/notifications/targets.py).
    NOTIFY_ALLOWED_NETWORKS: Networks = []

    # --- dashboard sessions ---
    # A dashboard session ends after this long without a request, and this long after its
    # log-in whatever happens (app/accounts/sessions.py); log-out and password changes end it.
    DASHBOARD_SESSION_IDLE_MINUTES: Annotated[int, Field(ge=1, le=1440)] = 30
    DASHBOARD_SESSION_MAX_HOURS: Annotated[int, Field(ge=1, le=720)] = 12

    # Reconciliation: how often, what counts as stale, how far back, the PSP call rate; after
    # a PSP 429 wait this long (doubling, at most 30 s) and retry up to N times; the run lock
    # expires this long after its last renewal; a run stops starting work after its budget;
    # the wide pass compares the PSP's sessions in chunks of about this many payments.
    RECON_INTERVAL_SECONDS: Interval = 300
    RECON_STALE_AFTER_SECONDS: Count = 600
    # A PENDING payment of a delayed method (SEPA, …) is stale only after this (it settles in days).
    RECON_DELAYED_STALE_AFTER_SECONDS: Count = 86400
    RECON_LOOKBACK_HOURS: Count = 48
    RECON_RATE_LIMIT_PER_SECOND: Seconds = 20.0
    RECON_RATE_LIMIT_BACKOFF_SECONDS: Seconds = 1.0
    RECON_RATE_LIMIT_MAX_RETRIES: Retries = 6
    RECON_LOCK_TTL_SECONDS: Count = 120
    RECON_MAX_RUN_SECONDS: Annotated[int, Field(ge=1, le=1500)] = 240  # job timeout: 1800
    RECON_WIDE_CHUNK_SESSIONS: Count = 2000

    # Retention (app/retention/): how often the worker purges, how old each kind of record gets
    # first (payments and their history are kept), and the batches it deletes in (each its own
    # short transaction, with a pause between them for replicas or a busy database).
    RETENTION_INTERVAL_SECONDS: Interval = 3600
    RETENTION_NOTIFICATIONS_DAYS: RetentionDays = 90
    # How long the Events API serves a notification as an event (older ones are neither listed
    # nor read); retention keeps delivered notifications at least this long.
    EVENTS_RETENTION_DAYS: Annotated[int, Field(ge=1, le=3650)] = 30
    RETENTION_PSP_EVENTS_DAYS: PspEventDays = 90
    RETENTION_RECON_RUNS_DAYS: RetentionDays = 90
    RETENTION_BATCH_SIZE: Annotated[int, Field(ge=1, le=10000)] = 1000
    RETENTION_BATCH_PAUSE_SECONDS: Annotated[float, Field(ge=0, le=60)] = 0.0

    # RQ's queue names (paybridge-recon, paybridge-default): several PayBridges share a Redis.
    RQ_QUEUE_PREFIX: QueuePrefix = "paybridge"

    # Flask-Limiter: where it counts (default REDIS_URL), and whether it limits at all.
    RATELIMIT_STORAGE_URI: StorageUri | None = None
    RATELIMIT_ENABLED: Flag = True

    # Rate limits (issue 25): /api/v1 requests per second per API key, reads (GET, HEAD) and
    # writes counted apart (Stripe's live limits: 100 each); a merchant's own limits override
    # them (`flask merchants limits`). Requests without a valid key: per client IP.
    API_RATE_LIMIT_READ_PER_SECOND: Count = 100
    API_RATE_LIMIT_WRITE_PER_SECOND: Count = 100
    API_RATE_LIMIT_ANONYMOUS_PER_SECOND: Count = 10
    # Creates towards the PSP share one cap for the Stripe account (all processes, in Redis).
    # While the account is at least half busy, each of the N merchants creating in the last
    # 10 s may take at most 1/(N + 1) of it, and never more than PSP_CREATE_MERCHANT_SHARE
    # (what a merchant alone may take), so bursting merchants leave room for one more. A create
    # that would wait longer than the queue time answers 503 PSP_RATE_LIMITED.
    PSP_CREATE_RATE_PER_SECOND: Annotated[float, Field(gt=0)] = 50.0
    PSP_CREATE_MERCHANT_SHARE: Annotated[float, Field(gt=0, le=1)] = 0.5
    PSP_CREATE_MAX_QUEUE_SECONDS: Annotated[float, Field(ge=0, le=10)] = 0.5

    # Not read from the environment.
    RATELIMIT_HEADERS_ENABLED: ClassVar[bool] = True
    # A Redis outage must not turn rate-limited pages into 500s: count in memory meanwhile.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED: ClassVar[bool] = True
    RATELIMIT_SWALLOW_ERRORS: ClassVar[bool] = True
    # A Redis that does not answer must not hold up requests: the limits give up quickly.
    RATELIMIT_STORAGE_OPTIONS: ClassVar[dict] = {
        "socket_connect_timeout": 0.5,
        "socket_timeout": 0.5,
    }
    SESSION_COOKIE_HTTPONLY: ClassVar[bool] = True
    SESSION_COOKIE_SAMESITE: ClassVar[str] = "Lax"
    REMEMBER_COOKIE_HTTPONLY: ClassVar[bool] = True
    REMEMBER_COOKIE_SAMESITE: ClassVar[str] = "Lax"
    MAX_CONTENT_LENGTH: ClassVar[int] = 1024 * 1024
    # The Strict-Transport-Security header every answer carries (app/security_headers.py).
    HSTS: ClassVar[str | None] = None
    # scripts/demo.sh's dashboard logins (DEMO_PASSWORDS) may be set as passwords: only in the
    # demo and the suite (app/accounts/passwords.py).
    DEMO_PASSWORDS_ALLOWED: ClassVar[bool] = False
    # flask-smorest (OpenAPI document generated from the request schemas).
    API_TITLE: ClassVar[str] = "PayBridge API"
    API_VERSION: ClassVar[str] = "v1"
    OPENAPI_VERSION: ClassVar[str] = "3.0.3"
    OPENAPI_URL_PREFIX: ClassVar[str] = "/api/v1"
    OPENAPI_JSON_PATH: ClassVar[str] = "openapi.json"

    def __init__(self, **values: Any) -> None:
        """Read the environment (`values` take precedence); ConfigError lists every refusal."""
        try:
            super().__init__(**values)
        except ValidationError as error:
            problems = refusals(type(self), error) | renamed_settings_set()
            raise ConfigError(problems, self.ENV_NAME) from None
        problems = renamed_settings_set() | self._stripe_mode_problems()
        if problems:
            raise ConfigError(problems, self.ENV_NAME)

    def _stripe_mode_problems(self) -> dict[str, str]:
        """At least one Stripe mode must be configured. A mode's key without its endpoint
        secret is allowed: `flask stripe setup` needs the key to make the endpoint whose secret
        it prints; until the secret is set, the start-up Stripe check says so (ERROR lines,
        /readyz) and that mode's events are refused, for Stripe to deliver again later."""
        problems = {}
        if not (self.STRIPE_TEST_SECRET_KEY or self.STRIPE_LIVE_SECRET_KEY):
            problems["STRIPE_LIVE_SECRET_KEY"] = (
                "not set, nor STRIPE_TEST_SECRET_KEY: PayBridge needs at least one Stripe mode"
            )
        return problems

    def stripe_modes(self) -> list[bool]:
        """The configured modes, as Stripe's `livemode` values (test first)."""
        return [live for live in (False, True) if self.stripe_secret_key(live)]

    def stripe_secret_key(self, livemode: bool) -> str | None:
        return self.STRIPE_LIVE_SECRET_KEY if livemode else self.STRIPE_TEST_SECRET_KEY

    @after_all(mode="after")
    def _storage_follows_redis(self) -> Config:
        if self.RATELIMIT_STORAGE_URI is None:
            self.RATELIMIT_STORAGE_URI = self.REDIS_URL
        return self

    @property
    def SQLALCHEMY_ENGINE_OPTIONS(self) -> dict:  # noqa: N802 (a Flask-SQLAlchemy key)
        if self.SQLALCHEMY_DATABASE_URI.startswith("sqlite"):
            # Web threads, the worker and the CLI share one file.
            return {"connect_args": {"timeout": 30}}
        return {
            "pool_pre_ping": True,
            "pool_recycle": 1800,
            "pool_size": self.DB_POOL_SIZE,
            "max_overflow": self.DB_MAX_OVERFLOW,
        }


class DevelopmentConfig(Config):
    """The one-command demo: SQLite, the local emulator, generated secrets."""

    ENV_NAME: ClassVar[str] = "development"
    DEMO_PASSWORDS_ALLOWED: ClassVar[bool] = True

    SECRET_KEY: SecretKey = Field(default_factory=lambda: secrets.token_hex(32))
    STRIPE_TEST_SECRET_KEY: StripeTestKey | None = EMULATOR_SECRET_KEY
    STRIPE_TEST_WEBHOOK_SECRETS: WebhookSecrets | None = webhook_secrets(
        "TEST", [EMULATOR_WEBHOOK_SECRET]
    )
    STRIPE_API_BASE: HttpUrl = EMULATOR_API_BASE
    # The demo shop, and the suite's notification receivers, listen on this machine.
    NOTIFY_ALLOWED_NETWORKS: Networks = ["127.0.0.0/8", "::1/128"]


class TestingConfig(DevelopmentConfig):
    """The test suite: MariaDB, Redis and the emulator, addresses given by tests/conftest.py."""

    ENV_NAME: ClassVar[str] = "testing"
    TESTING: ClassVar[bool] = True

    NOTIFY_RETRY_SCHEDULE: Schedule = [1, 1, 1]
    NOTIFY_TIMEOUT_SECONDS: Seconds = 2.0
    # Worker processes of the suite serve metrics only where a test gives them a free port.
    WORKER_METRICS_PORT: Port = 0
    STRIPE_MAX_NETWORK_RETRIES: Retries = 0
    STRIPE_TIMEOUT_SECONDS: Seconds = 5.0
    # The suite proves both modes against the emulator.
    STRIPE_LIVE_SECRET_KEY: StripeLiveKey | None = EMULATOR_LIVE_SECRET_KEY
    STRIPE_LIVE_WEBHOOK_SECRETS: WebhookSecrets | None = webhook_secrets(
        "LIVE", [EMULATOR_LIVE_WEBHOOK_SECRET]
    )


# Storages of the limits library that every process shares (production accepts only these).
SHARED_LIMIT_STORAGES = ("redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster")


class ProductionConfig(Config):
    """Real money: its secrets are required, and unsafe or demo values are refused. Test-mode
    Stripe keys and another STRIPE_API_BASE stay allowed: staging runs on them."""

    ENV_NAME: ClassVar[str] = "production"
    SESSION_COOKIE_SECURE: ClassVar[bool] = True
    REMEMBER_COOKIE_SECURE: ClassVar[bool] = True
    HSTS: ClassVar[str | None] = "max-age=31536000"

    LOG_FORMAT: LogFormat = "json"  # for the log collector
    SECRET_KEY: SecretKey
    SQLALCHEMY_DATABASE_URI: DatabaseUrl
    PUBLIC_BASE_URL: PublicUrl
    METRICS_TOKEN: SecretKey
    # Not a setting: the password `flask users create` takes from the environment, checked
    # here so that the demo's logins never reach production.
    user_password: Password | None = Field(None, validation_alias="PAYBRIDGE_USER_PASSWORD")

    @field_validator("SECRET_KEY", "METRICS_TOKEN")
    @classmethod
    def _strong(cls, value: str) -> str:
        weakness = secret_weakness(value)
        if weakness:
            raise ValueError(weakness)
        return value

    @field_validator("SQLALCHEMY_DATABASE_URI")
    @classmethod
    def _mysql(cls, value: str) -> str:
        if make_url(value).get_backend_name() == "sqlite":
            raise ValueError("is SQLite: production runs on MySQL/MariaDB")
        return value

    @field_validator("RATELIMIT_STORAGE_URI")
    @classmethod
    def _shared_storage(cls, value: str | None) -> str | None:
        # memory:// (or any per-process storage) counts each process apart: N workers would
        # allow N times every limit, silently.
        if value is not None and urlsplit(value).scheme not in SHARED_LIMIT_STORAGES:
            raise ValueError(
                "is not a Redis storage (redis://, rediss://): production counts the rate "
                "limits across all processes"
            )
        return value

    @field_validator("PUBLIC_BASE_URL")
    @classmethod
    def _https(cls, value: str) -> str:
        if urlsplit(value).scheme != "https":
            raise ValueError("is not https://: shoppers and Stripe reach production over TLS")
        return value

    @field_validator("STRIPE_TEST_SECRET_KEY", "STRIPE_LIVE_SECRET_KEY")
    @classmethod
    def _real_stripe_key(cls, value: str | None) -> str | None:
        if value in (EMULATOR_SECRET_KEY, EMULATOR_LIVE_SECRET_KEY):
            raise ValueError("is the emulator's key")
        return value

    @field_validator("STRIPE_TEST_WEBHOOK_SECRETS", "STRIPE_LIVE_WEBHOOK_SECRETS")
    @classmethod
    def _whsec(cls, value: list[str] | None) -> list[str] | None:
        for number, secret in enumerate(value or (), 1):
            if secret in (EMULATOR_WEBHOOK_SECRET, EMULATOR_LIVE_WEBHOOK_SECRET):
                raise ValueError(f"secret {number} is the demo's")
            if not secret.startswith("whsec_") or len(secret) <= len("whsec_"):
                raise ValueError(f"secret {number} is not a whsec_… endpoint secret")
        return value

    @field_validator("user_password")
    @classmethod
    def _no_demo_password(cls, value: str | None) -> None:
        if value in DEMO_PASSWORDS:
            raise ValueError("is one of the demo's passwords")
        return None  # checked, not kept


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load_config(name: str | None = None) -> Config:
    """Build the configuration named by PAYBRIDGE_ENV (development by default)."""
    name = name or os.environ.get("PAYBRIDGE_ENV") or "development"
    if name not in CONFIGS:
        raise ConfigError({"PAYBRIDGE_ENV": f"{name!r} is none of {', '.join(CONFIGS)}"})
    return CONFIGS[name]()


def environment_variables() -> set[str]:
    """Every environment variable a role reads (the README's configuration table has each)."""
    return {"PAYBRIDGE_ENV"} | {
        _variable(name, field)
        for role in CONFIGS.values()
        for name, field in role.model_fields.items()
    }


# --- checks and words ----------------------------------------------------------------------------


def secret_weakness(value: str) -> str | None:
    """Why `value` would be a weak secret key or token, or None: too short, a repeated pattern,
    too few different characters, or a placeholder's word."""
    if len(value) < STRONG_SECRET_LENGTH:
        return f"is shorter than {STRONG_SECRET_LENGTH} characters"
    if any(word in value.lower() for word in PLACEHOLDERS):
        return "looks like a placeholder, not a random value"
    if any(value == value[:period] * (len(value) // period) + value[: len(value) % period]
           for period in range(1, len(value) // 2 + 1)):  # fmt: skip
        return "repeats a shorter pattern"
    counts = Counter(value)
    bits = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    if len(counts) < 8 or bits < 2.5:
        return "has too little variety to be random"
    return None


def refusals(config: type[Config], error: ValidationError) -> dict[str, str]:
    """One line per refused variable: what is wrong with it (its value, unless secret), then
    what it accepts."""
    fields = {_variable(name, field): field for name, field in config.model_fields.items()}
    problems: dict[str, list[str]] = {}
    for detail in error.errors():
        variable = str(detail["loc"][0])
        if detail["type"] == "missing":
            why = f"required in {config.ENV_NAME}, not set"
        else:
            why = detail["msg"].removeprefix("Value error, ")
            why = why.replace("Input should be", "should be").replace("String should", "should")
            if SECRET not in _markers(fields[variable]):
                why = f"{detail['input']!r} {why}"
            if len(detail["loc"]) > 1:  # one item of a list
                why = f"item {int(detail['loc'][1]) + 1}, {why}"
        problems.setdefault(variable, []).append(why)
    return {
        variable: f"{'; '.join(whys)}. Accepts {accepts(fields[variable])}."
        for variable, whys in problems.items()
    }


def _variable(name: str, field: FieldInfo) -> str:
    """The environment variable a field is read from (its alias, else its name)."""
    return field.validation_alias if isinstance(field.validation_alias, str) else name


def _markers(field: FieldInfo) -> list:
    """A field's Annotated metadata, also where it is optional (`SecretKey | None`)."""
    found = list(field.metadata)
    for option in get_args(field.annotation):
        found.extend(getattr(option, "__metadata__", ()))
    return found


def accepts(field: FieldInfo) -> str:
    """What a setting accepts, in words: its Accepts text, or said from its type and bounds."""
    for item in _markers(field):
        if isinstance(item, Accepts):
            return item.text
    kind = field.annotation
    if get_origin(kind) is Literal:
        return "one of " + ", ".join(get_args(kind))
    if kind is bool:
        return "1 or 0 (also true/false, yes/no, on/off)"
    noun = {int: "a whole number", float: "a number"}.get(kind, "text")
    bounds = {
        name: getattr(item, name)
        for item in field.metadata
        for name in ("ge", "gt", "le")
        if getattr(item, name, None) is not None
    }
    if "gt" in bounds:
        return f"{noun} above {bounds['gt']}"
    if "ge" in bounds and "le" in bounds:
        return f"{noun} from {bounds['ge']} to {bounds['le']}"
    if "ge" in bounds:
        return f"{noun} ≥ {bounds['ge']}"
    return noun
