"""Shared fixtures: the real MariaDB, Redis and Stripe emulator, the app, and small factories.

Each pytest run creates its own database (PAYBRIDGE_TEST_DATABASE, default `paybridge_test`)
from the Alembic migrations, uses its own Redis database number (PAYBRIDGE_TEST_REDIS_DB,
default 15), and starts its own emulator on a free port. Tables and Redis are emptied after
every test.
"""

from __future__ import annotations

import os

os.environ["PAYBRIDGE_ENV"] = "testing"

import pymysql  # noqa: E402
import pytest  # noqa: E402
from redis import Redis  # noqa: E402
from sqlalchemy import text  # noqa: E402

from tests.support.live_server import LiveServer  # noqa: E402
from tests.support.receiver import Receiver  # noqa: E402

# One Playwright driver and Chromium for the whole run (emulator page tests and e2e alike).
pytest_plugins = ["tests.support.browser"]

MYSQL_HOST = os.environ.get("PAYBRIDGE_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("PAYBRIDGE_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("PAYBRIDGE_TEST_MYSQL_USER", "root")
TEST_DATABASE = os.environ.get("PAYBRIDGE_TEST_DATABASE", "paybridge_test")
REDIS_DB = int(os.environ.get("PAYBRIDGE_TEST_REDIS_DB", "15"))
REDIS_BASE = os.environ.get("PAYBRIDGE_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def mysql_url(database: str) -> str:
    return f"mysql+pymysql://{MYSQL_USER}@{MYSQL_HOST}:{MYSQL_PORT}/{database}?charset=utf8mb4"


def recreate_database(name: str) -> None:
    conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
    finally:
        conn.close()


def drop_database(name: str) -> None:
    conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


@pytest.fixture(scope="session")
def emulator():
    """The Stripe emulator, over real HTTP, for the whole run."""
    from stripe_emulator.testing import run_emulator

    with run_emulator() as running:
        yield running


@pytest.fixture(scope="session")
def redis_url() -> str:
    return f"{REDIS_BASE}/{REDIS_DB}"


@pytest.fixture(scope="session")
def app(emulator, redis_url):
    """The application on MariaDB (schema from the migrations), Redis and the emulator."""
    recreate_database(TEST_DATABASE)
    os.environ.update(
        {
            "DATABASE_URL": mysql_url(TEST_DATABASE),
            "REDIS_URL": redis_url,
            "STRIPE_API_BASE": emulator.url,
            "STRIPE_SECRET_KEY": emulator.api_key,
            "STRIPE_WEBHOOK_SECRET": "whsec_test_paybridge",
            "RATELIMIT_STORAGE_URI": redis_url,
        }
    )
    from flask_migrate import upgrade

    from app import create_app

    application = create_app("testing")
    application.config["WTF_CSRF_ENABLED"] = True
    with application.app_context():
        upgrade()
    yield application
    from app.extensions import db

    with application.app_context():
        db.engine.dispose()
    drop_database(TEST_DATABASE)


@pytest.fixture(autouse=True)
def _clean_state(request):
    """Empty every table and the test Redis database after each test that used the app."""
    yield
    if "app" not in request.fixturenames:
        return
    application = request.getfixturevalue("app")
    from app.extensions import db

    # A fresh PSP adapter per test: an open circuit breaker must not leak into the next test.
    application.extensions.pop("paybridge_psp", None)

    with application.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            conn.execute(text("SET FOREIGN_KEY_CHECKS=0"))
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())
            conn.execute(text("SET FOREIGN_KEY_CHECKS=1"))
    Redis.from_url(application.config["REDIS_URL"]).flushdb()


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture(scope="session")
def live_server(app):
    """The app on a real port (for Stripe's webhooks from the emulator and for browsers)."""
    server = LiveServer(app).start()
    app.config["PUBLIC_BASE_URL"] = server.url
    yield server
    server.stop()


@pytest.fixture
def receiver():
    """A client app's notify endpoint: records the notifications PayBridge sends."""
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def make_merchant(app):
    """Create a merchant with one API key: returns (merchant, raw_api_key)."""
    from app.extensions import db
    from app.models import ApiKey, Merchant

    def factory(name: str = "Test Shop", notify_url: str | None = None):
        with app.app_context():
            merchant = Merchant(name=name, notify_url=notify_url)
            key, raw = ApiKey.generate(merchant)
            db.session.add_all([merchant, key])
            db.session.commit()
            db.session.refresh(merchant)
            db.session.expunge(merchant)
            return merchant, raw

    return factory


@pytest.fixture
def dead_db_app(app):
    """A second app whose database (and Redis) cannot be reached."""
    from app import create_app

    overrides = {
        "DATABASE_URL": "mysql+pymysql://root@127.0.0.1:1/paybridge?charset=utf8mb4",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:1/0",
    }
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        dead = create_app("testing")
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    yield dead
    from app.extensions import db, limiter

    with dead.app_context():
        db.engine.dispose()
    # Flask-Limiter keeps one storage per Limiter, not per app: the dead app's init_app pointed
    # the shared limiter at its unreachable Redis, so every later test counted its limits in
    # the in-memory fallback, which no test's cleanup empties. Back to this run's Redis.
    limiter.init_app(app)
