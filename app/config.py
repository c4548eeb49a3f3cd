"""Configuration classes, read from the environment once (DESIGN.md, "Configuration")."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

# Values that match the local Stripe emulator; only ever used outside production.
EMULATOR_API_BASE = "http://127.0.0.1:12111"
EMULATOR_SECRET_KEY = "sk_test_emulator"
EMULATOR_WEBHOOK_SECRET = "whsec_paybridge_demo_secret"
STRIPE_API_BASE = "https://api.stripe.com"

INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"


class ConfigError(RuntimeError):
    """The environment lacks something this configuration needs to start safely."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def _env_float(name: str, default: float) -> float:
    return float(_env(name, str(default)))


def _env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in (_env(name, default) or "").split(",") if item.strip()]


def _env_schedule(name: str, default: str) -> list[int]:
    return [int(float(s)) for s in _env_list(name, default)]


# Stripe's bounds on a Checkout Session's lifetime (30 min .. 24 h), plus a minute's margin.
CHECKOUT_SESSION_TTL_RANGE = (31 * 60, 24 * 3600)


class Config:
    """Settings shared by every environment; subclasses change what differs."""

    ENV_NAME = "base"
    TESTING = False
    DEBUG = False

    def __init__(self) -> None:
        self.SECRET_KEY = _env("SECRET_KEY")
        self.SQLALCHEMY_DATABASE_URI = _env("DATABASE_URL", self.default_database_url())
        self.SQLALCHEMY_ENGINE_OPTIONS = self.engine_options(self.SQLALCHEMY_DATABASE_URI)
        self.REDIS_URL = _env("REDIS_URL", "redis://127.0.0.1:6379/0")
        self.PUBLIC_BASE_URL = (_env("PUBLIC_BASE_URL", "http://127.0.0.1:5000") or "").rstrip("/")

        self.PSP_NAME = _env("PSP_NAME", "stripe")
        self.STRIPE_SECRET_KEY = _env("STRIPE_SECRET_KEY")
        # Several endpoint secrets, comma-separated, while a webhook secret is being rotated.
        self.STRIPE_WEBHOOK_SECRETS = _env_list("STRIPE_WEBHOOK_SECRET")
        self.STRIPE_API_BASE = _env("STRIPE_API_BASE", STRIPE_API_BASE)
        self.STRIPE_TIMEOUT_SECONDS = _env_float("STRIPE_TIMEOUT_SECONDS", 10.0)
        self.STRIPE_MAX_NETWORK_RETRIES = _env_int("STRIPE_MAX_NETWORK_RETRIES", 2)
        self.STRIPE_WEBHOOK_TOLERANCE_SECONDS = _env_int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300)
        # Checkout sessions live this long before Stripe expires them (31 min .. 24 h, validate).
        self.CHECKOUT_SESSION_TTL_SECONDS = _env_int("CHECKOUT_SESSION_TTL_SECONDS", 3600)
        # How long a request waits for a concurrent one with the same Idempotency-Key to answer.
        self.IDEMPOTENCY_WAIT_SECONDS = _env_float("IDEMPOTENCY_WAIT_SECONDS", 5.0)
        # Completed Idempotency-Keys are honoured this long (Stripe: at least 24 h).
        self.IDEMPOTENCY_RETENTION_HOURS = _env_int("IDEMPOTENCY_RETENTION_HOURS", 48)
        self.IDEMPOTENCY_PURGE_INTERVAL_SECONDS = _env_int(
            "IDEMPOTENCY_PURGE_INTERVAL_SECONDS", 3600
        )
        # How often the worker learns the payment intents of paid renewals (refunds need them).
        self.SUBSCRIPTION_UPKEEP_INTERVAL_SECONDS = _env_int(
            "SUBSCRIPTION_UPKEEP_INTERVAL_SECONDS", 60
        )
        # Circuit breaker towards the PSP: after N consecutive failures, fail fast for T seconds.
        self.PSP_BREAKER_FAIL_MAX = _env_int("PSP_BREAKER_FAIL_MAX", 5)
        self.PSP_BREAKER_RESET_SECONDS = _env_int("PSP_BREAKER_RESET_SECONDS", 30)

        # Notifications to client apps: delays between attempts, then failed.
        self.NOTIFY_RETRY_SCHEDULE = _env_schedule(
            "NOTIFY_RETRY_SCHEDULE", "10,60,300,1800,7200,21600"
        )
        self.NOTIFY_TIMEOUT_SECONDS = _env_float("NOTIFY_TIMEOUT_SECONDS", 5.0)
        # Notifications POSTed at once by each worker process's pump (threads that wait on
        # client apps, not on the CPU), and how often an idle pump looks for due ones.
        self.NOTIFY_CONCURRENCY = _env_int("NOTIFY_CONCURRENCY", 64)
        self.NOTIFY_POLL_SECONDS = _env_float("NOTIFY_POLL_SECONDS", 0.5)
        # RQ jobs (reconciliation, subscription upkeep) one worker process runs at once, in
        # threads (worker.py). Keep it plus one (the pump) under DB_POOL_SIZE + DB_MAX_OVERFLOW.
        self.WORKER_CONCURRENCY = _env_int("WORKER_CONCURRENCY", 4)
        # Whether notify URLs may point at loopback/private addresses (the demo's and tests'
        # client apps live on 127.0.0.1); production refuses them unless told otherwise.
        self.NOTIFY_ALLOW_PRIVATE_TARGETS = _env("NOTIFY_ALLOW_PRIVATE_TARGETS", "1") == "1"

        # Reconciliation.
        self.RECON_INTERVAL_SECONDS = _env_int("RECON_INTERVAL_SECONDS", 300)
        self.RECON_STALE_AFTER_SECONDS = _env_int("RECON_STALE_AFTER_SECONDS", 600)
        self.RECON_LOOKBACK_HOURS = _env_int("RECON_LOOKBACK_HOURS", 48)
        self.RECON_RATE_LIMIT_PER_SECOND = _env_float("RECON_RATE_LIMIT_PER_SECOND", 20.0)
        # A PSP answering 429: wait this long (doubling, at most 30 s) and retry up to N times.
        self.RECON_RATE_LIMIT_BACKOFF_SECONDS = _env_float("RECON_RATE_LIMIT_BACKOFF_SECONDS", 1.0)
        self.RECON_RATE_LIMIT_MAX_RETRIES = _env_int("RECON_RATE_LIMIT_MAX_RETRIES", 6)
        # The run lock expires this long after its last renewal (a crashed run frees it).
        self.RECON_LOCK_TTL_SECONDS = _env_int("RECON_LOCK_TTL_SECONDS", 120)
        # A run stops starting new work after this long (under RQ's job timeout); the next
        # run picks up what is left.
        self.RECON_MAX_RUN_SECONDS = _env_int("RECON_MAX_RUN_SECONDS", 240)
        # The wide pass compares the PSP's sessions in chunks of creation time holding about
        # this many payments (20 list calls), saving its progress after each: a run cut short
        # redoes at most one chunk.
        self.RECON_WIDE_CHUNK_SESSIONS = _env_int("RECON_WIDE_CHUNK_SESSIONS", 2000)

        # RQ's queue names (paybridge-recon, paybridge-default): several PayBridges can share
        # one Redis.
        self.RQ_QUEUE_PREFIX = _env("RQ_QUEUE_PREFIX", "paybridge")

        self.RATELIMIT_STORAGE_URI = _env("RATELIMIT_STORAGE_URI", self.REDIS_URL)
        self.RATELIMIT_HEADERS_ENABLED = True
        # A Redis outage must not turn rate-limited pages into 500s: count in memory meanwhile.
        self.RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
        self.RATELIMIT_SWALLOW_ERRORS = True
        self.LOG_LEVEL = _env("LOG_LEVEL", "INFO")
        # Proxies in front of the app (load balancer): trust this many X-Forwarded-* hops, so
        # audit IPs and generated URLs are the client's, not the proxy's.
        self.PROXY_FIX_HOPS = _env_int("PROXY_FIX_HOPS", 0)
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.REMEMBER_COOKIE_SAMESITE = "Lax"
        self.MAX_CONTENT_LENGTH = 1024 * 1024

        # flask-smorest (OpenAPI document generated from the request schemas).
        self.API_TITLE = "PayBridge API"
        self.API_VERSION = "v1"
        self.OPENAPI_VERSION = "3.0.3"
        self.OPENAPI_URL_PREFIX = "/api/v1"
        self.OPENAPI_JSON_PATH = "openapi.json"

    @staticmethod
    def default_database_url() -> str:
        return f"sqlite:///{INSTANCE_DIR / 'paybridge.sqlite3'}"

    @staticmethod
    def engine_options(url: str) -> dict:
        if url.startswith("sqlite"):
            # Web threads, the worker and the CLI share one file.
            return {"connect_args": {"timeout": 30}}
        return {
            "pool_pre_ping": True,
            "pool_recycle": 1800,
            "pool_size": _env_int("DB_POOL_SIZE", 10),
            "max_overflow": _env_int("DB_MAX_OVERFLOW", 20),
        }

    def validate(self) -> None:
        """Raise ConfigError when something this environment cannot run without is missing."""
        low, high = CHECKOUT_SESSION_TTL_RANGE
        if not low <= self.CHECKOUT_SESSION_TTL_SECONDS <= high:
            # Stripe refuses expires_at under 30 minutes away or over 24 hours: every payment
            # would be rejected. The extra minute leaves room for the round trip.
            raise ConfigError(
                f"CHECKOUT_SESSION_TTL_SECONDS must be between {low} and {high} seconds, "
                f"not {self.CHECKOUT_SESSION_TTL_SECONDS}"
            )


class DevelopmentConfig(Config):
    """The one-command demo: SQLite, the local emulator, generated secrets."""

    ENV_NAME = "development"
    DEBUG = False

    def __init__(self) -> None:
        super().__init__()
        self.SECRET_KEY = self.SECRET_KEY or secrets.token_hex(32)
        self.STRIPE_SECRET_KEY = self.STRIPE_SECRET_KEY or EMULATOR_SECRET_KEY
        self.STRIPE_WEBHOOK_SECRETS = self.STRIPE_WEBHOOK_SECRETS or [EMULATOR_WEBHOOK_SECRET]
        self.STRIPE_API_BASE = _env("STRIPE_API_BASE", EMULATOR_API_BASE)


class TestingConfig(DevelopmentConfig):
    """The test suite: MariaDB, Redis and the emulator, addresses given by tests/conftest.py."""

    ENV_NAME = "testing"
    TESTING = True

    def __init__(self) -> None:
        super().__init__()
        self.NOTIFY_RETRY_SCHEDULE = _env_schedule("NOTIFY_RETRY_SCHEDULE", "1,1,1")
        self.NOTIFY_TIMEOUT_SECONDS = _env_float("NOTIFY_TIMEOUT_SECONDS", 2.0)
        self.STRIPE_MAX_NETWORK_RETRIES = _env_int("STRIPE_MAX_NETWORK_RETRIES", 0)
        self.STRIPE_TIMEOUT_SECONDS = _env_float("STRIPE_TIMEOUT_SECONDS", 5.0)
        self.RATELIMIT_ENABLED = _env("RATELIMIT_ENABLED", "1") == "1"


class ProductionConfig(Config):
    """Real money: refuses to start without its secrets."""

    ENV_NAME = "production"
    REQUIRED = ("SECRET_KEY", "DATABASE_URL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET")

    def __init__(self) -> None:
        super().__init__()
        self.SESSION_COOKIE_SECURE = True
        self.REMEMBER_COOKIE_SECURE = True
        self.NOTIFY_ALLOW_PRIVATE_TARGETS = _env("NOTIFY_ALLOW_PRIVATE_TARGETS", "0") == "1"

    def validate(self) -> None:
        super().validate()
        missing = [name for name in self.REQUIRED if not _env(name)]
        if missing:
            raise ConfigError(f"production needs these environment variables: {', '.join(missing)}")


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load_config(name: str | None = None) -> Config:
    """Build the configuration named by PAYBRIDGE_ENV (development by default)."""
    name = name or _env("PAYBRIDGE_ENV", "development")
    if name not in CONFIGS:
        raise ConfigError(f"PAYBRIDGE_ENV must be one of {', '.join(CONFIGS)}, not {name!r}")
    config = CONFIGS[name]()
    config.validate()
    return config
