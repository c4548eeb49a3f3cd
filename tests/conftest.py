"""Shared fixtures: the real MariaDB, Redis and Stripe emulator, the app, and the factories of
tests/support/factories.py bound to it.

Each pytest run creates its own database (PAYBRIDGE_TEST_DATABASE, default `paybridge_test`)
from the Alembic migrations, uses its own Redis database number (PAYBRIDGE_TEST_REDIS_DB,
default 15), and starts its own emulator on a free port. Tables and Redis are emptied after
every test.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

os.environ["PAYBRIDGE_ENV"] = "testing"

import pymysql  # noqa: E402
import pytest  # noqa: E402
from redis import Redis  # noqa: E402
from sqlalchemy import text  # noqa: E402

from app.models import PaymentStatus  # noqa: E402
from tests.support import factories, openapi_contract  # noqa: E402
from tests.support.delivery import Deliveries  # noqa: E402
from tests.support.live_server import LiveServer  # noqa: E402
from tests.support.pages import logged_in  # noqa: E402
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
            "STRIPE_TEST_SECRET_KEY": emulator.api_key,
            "STRIPE_TEST_WEBHOOK_SECRET": "whsec_test_paybridge",
            "RATELIMIT_STORAGE_URI": redis_url,
        }
    )
    from flask_migrate import upgrade

    from app import create_app

    application = create_app("testing")
    application.config["WTF_CSRF_ENABLED"] = True
    openapi_contract.install(application)
    with application.app_context():
        upgrade()
    yield application
    from app.extensions import db

    with application.app_context():
        db.engine.dispose()
    drop_database(TEST_DATABASE)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    openapi_contract.breaches.take()  # a late answer to the previous test is not this one's


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A test that got an API answer the OpenAPI document does not describe fails
    (tests/support/openapi_contract.py); one that failed already is reported as it failed."""
    result = yield
    if item.get_closest_marker("synthetic_rows") is None:
        openapi_contract.raise_breaches()
    return result


@pytest.fixture(autouse=True)
def _clean_state(request):
    """Every test that uses the app starts with the shared rate limiter on it, and leaves every
    table and the test Redis database empty."""
    if "app" in request.fixturenames:
        from app.extensions import limiter

        # Flask-Limiter keeps one storage per Limiter, not per app: a second app built by a
        # test (production_app, dead_db_app, a fresh create_app) rebinds the shared limiter to
        # its storage, and later tests would count there (or in the in-memory fallback of an
        # unreachable Redis, which no cleanup empties). Every test starts on this run's Redis.
        limiter.init_app(request.getfixturevalue("app"))
    yield
    if "app" not in request.fixturenames:
        return
    application = request.getfixturevalue("app")
    from app.common.locks import retry_lock_conflicts
    from app.extensions import db

    # A fresh PSP adapter per test: an open circuit breaker must not leak into the next test.
    application.extensions.pop("paybridge_psp", None)

    def empty_tables() -> None:
        with db.engine.connect() as conn:
            try:
                conn.execute(text("SET FOREIGN_KEY_CHECKS=0"))
                for table in reversed(db.metadata.sorted_tables):
                    conn.execute(table.delete())
                conn.execute(text("SET FOREIGN_KEY_CHECKS=1"))
                conn.commit()
            except Exception:
                conn.invalidate()  # it may still skip foreign key checks: never back in the pool
                raise

    with application.app_context():
        db.session.remove()
        # A late webhook of this test may still be writing (the emulator delivers on its own
        # schedule): a deadlock with it rolls the cleanup back whole, so it is tried again.
        retry_lock_conflicts(empty_tables, what="emptying the test tables")
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
def shop(app, live_server, emulator, tmp_path):
    """A fresh demo shop (store, catalogue, server), connected to PayBridge as a new merchant
    whose notify URL is the shop's /notify; Stripe's webhooks reach the live PayBridge, and
    PayBridge's notifications reach the shop (tests/shop/support.py)."""
    from tests.shop.support import running_shop
    from tests.support.payflow import ensure_stripe_webhook_endpoint

    ensure_stripe_webhook_endpoint(emulator, live_server)
    with running_shop(app, tmp_path) as running:
        yield running


# -- the emulator, reset, and delivering its webhooks ---------------------------------------------


@pytest.fixture
def emu(emulator):
    """The emulator, reset before and after the test: its objects, faults, clock, webhook
    endpoints and paused deliveries. (`_clean_state` gives the app a fresh PSP adapter.)"""
    emulator.control("POST", "reset")
    yield emulator
    emulator.control("POST", "reset")


@pytest.fixture
def live_emulator(app, emu):
    """The reset emulator as live mode's Stripe too (the app's sk_live_ key), with a fresh live
    adapter: no call of an earlier test counted against it."""
    app.extensions.pop("paybridge_psp", None)
    return emu


@pytest.fixture
def stripe_delivers(app, emu, live_server):
    """The reset emulator delivering every event to PayBridge's webhook endpoint over HTTP: one
    endpoint per mode, as on Stripe, each signing with that mode's secret."""
    for livemode in (False, True):
        mode = "LIVE" if livemode else "TEST"
        emu.control(
            "POST",
            "webhook_endpoints",
            {
                "url": live_server.url + "/webhooks/stripe",
                "secret": app.config[f"STRIPE_{mode}_WEBHOOK_SECRETS"][0],
                "livemode": livemode,
            },
        )
    return emu


# -- test data (tests/support/factories.py) -------------------------------------------------------


@pytest.fixture
def make_merchant(app):
    """`make_merchant(name="Test Shop", notify_url=None)`: a merchant with one API key,
    committed: (merchant, raw API key)."""
    return functools.partial(factories.make_merchant, app)


@pytest.fixture
def merchant(make_merchant):
    """A merchant whose notify_url nobody answers (port 9): notifications are written, and
    fail if a test delivers them."""
    merchant, _raw_key = make_merchant("Test Shop", "http://127.0.0.1:9/notify")
    return merchant


@pytest.fixture
def make_user(app):
    """`make_user(merchant_id, email, operator=False)`: a dashboard user (password
    factories.PASSWORD); its id."""
    return functools.partial(factories.make_user, app)


@pytest.fixture
def make_payment(app, merchant):
    """`make_payment(status=INITIATED, merchant_id=merchant.id, **fields)`: a payment moved
    through the state machine to `status` without a PSP (factories.record_payment)."""

    def factory(status=PaymentStatus.INITIATED, *, merchant_id=None, **fields):
        return factories.make_payment(app, merchant_id or merchant.id, status, **fields)

    return factory


@pytest.fixture
def registered_payment(app, emu):
    """`registered_payment(merchant_id, **params)`: created through the payment core, so
    registered at the (reset) emulator: INITIATED."""
    return functools.partial(factories.registered_payment, app)


@pytest.fixture
def paid_payment(app, emu):
    """`paid_payment(merchant_id, **params)`: registered, paid with a card at the (reset)
    emulator and applied as the shopper's return does: SUCCESS."""
    return functools.partial(factories.paid_payment, app, emu)


@pytest.fixture
def failed_then_paid(app, emu):
    """`failed_then_paid(merchant_id, amount=2599, currency="EUR")`: a FAILED payment whose
    session was paid at the emulator; PayBridge has not heard yet."""
    return functools.partial(factories.failed_then_paid, app, emu)


@pytest.fixture
def paid_after_failed(app, emu):
    """`paid_after_failed(merchant_id, amount=2599, currency="EUR")`: a FAILED payment paid at
    the emulator after all, with its open paid-after-failed conflict."""
    return functools.partial(factories.paid_after_failed, app, emu)


# -- notifications --------------------------------------------------------------------------------


@pytest.fixture
def notify_config(app):
    """Short delivery schedules; whatever a test changes here is put back afterwards."""
    keys = ("NOTIFY_RETRY_SCHEDULE", "NOTIFY_TIMEOUT_SECONDS", "NOTIFY_ALLOWED_NETWORKS")
    saved = {key: app.config[key] for key in keys}
    app.config.update(NOTIFY_RETRY_SCHEDULE=[1, 1, 1], NOTIFY_TIMEOUT_SECONDS=2.0)
    yield app.config
    app.config.update(saved)


@pytest.fixture
def worker(app, notify_config):
    """The worker's notification delivery cycles, run in this process."""
    return Deliveries(app)


# -- the dashboard: two merchants, a user of each, and an operator --------------------------------


@dataclass
class Tenants:
    a_id: int
    b_id: int
    a_key: str
    b_key: str
    a_email: str = "alice@shop-a.example"
    b_email: str = "bob@shop-b.example"
    op_email: str = "ops@paybridge.example"


@pytest.fixture
def tenants(app, make_merchant, make_user) -> Tenants:
    a, a_key = make_merchant("Shop A", "https://a.example/notify")
    b, b_key = make_merchant("Shop B", "https://b.example/notify")
    t = Tenants(a_id=a.id, b_id=b.id, a_key=a_key, b_key=b_key)
    make_user(t.a_id, t.a_email)
    make_user(t.b_id, t.b_email)
    make_user(None, t.op_email, operator=True)
    return t


@pytest.fixture
def client_a(app, tenants):
    """Merchant A's user, logged in to the dashboard."""
    return logged_in(app, tenants.a_email)


@pytest.fixture
def client_b(app, tenants):
    """Merchant B's user, logged in to the dashboard."""
    return logged_in(app, tenants.b_email)


@pytest.fixture
def client_op(app, tenants):
    """The operator, logged in to the dashboard."""
    return logged_in(app, tenants.op_email)


@pytest.fixture
def production_app(app, monkeypatch):
    """PayBridge built with PAYBRIDGE_ENV=production's configuration: safe settings
    (tests/support/production.py) on this run's database and Redis."""
    from app import create_app
    from app.extensions import db
    from tests.support.production import safe_production_settings

    for name, value in safe_production_settings(app.config["SQLALCHEMY_DATABASE_URI"]).items():
        monkeypatch.setenv(name, value)
    production = create_app("production")
    assert production.config["PAYBRIDGE_ENV"] == "production"
    yield production
    with production.app_context():
        db.engine.dispose()


@pytest.fixture
def dead_db_app(app):
    """A second app whose database (and Redis) cannot be reached."""
    from tests.support.apps import app_with_env

    with app_with_env(
        DATABASE_URL="mysql+pymysql://root@127.0.0.1:1/paybridge?charset=utf8mb4",
        REDIS_URL="redis://127.0.0.1:1/0",
        RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0",
    ) as dead:
        yield dead
