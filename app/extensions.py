"""Flask extensions, created unbound here and bound to the app in create_app()."""

from flask import Flask, current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from redis import Redis
from sqlalchemy import Engine, MetaData, event
from sqlalchemy.orm import DeclarativeBase

# Named constraints keep Alembic migrations stable on MySQL and SQLite alike.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


class ReferrerSafeCSRFProtect(CSRFProtect):
    """Flask-WTF's CSRF check of an HTTPS form post compares the Referer's port with urllib,
    which raises a bare ValueError on `https://[` or a port out of range (a 500): such a
    header is the CSRF failure it is, a 400."""

    def protect(self, *args, **kwargs):
        try:
            return super().protect(*args, **kwargs)
        except ValueError:
            self._error_response("The referrer header is malformed.")


csrf = ReferrerSafeCSRFProtect()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
api = Api()


def get_redis(app: Flask | None = None) -> Redis:
    """The app's Redis client (RQ queues, the reconciliation lock), made on first use."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    if "paybridge_redis" not in app.extensions:
        app.extensions["paybridge_redis"] = Redis.from_url(
            app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5
        )
    return app.extensions["paybridge_redis"]


def get_limits_redis(app: Flask | None = None) -> Redis:
    """A Redis client of the rate limits' own (the PSP's create cap): on REDIS_URL, with the
    API limits' short timeouts (RATELIMIT_STORAGE_OPTIONS) rather than the shared client's
    seconds, so that a Redis that hangs holds up the request probing it briefly, not for 5 s."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    if "paybridge_limits_redis" not in app.extensions:
        app.extensions["paybridge_limits_redis"] = Redis.from_url(
            app.config["REDIS_URL"], **app.config["RATELIMIT_STORAGE_OPTIONS"]
        )
    return app.extensions["paybridge_limits_redis"]


def serialise_sqlite_transactions(engine: Engine) -> None:
    """Make SQLite honour `lock_payment`'s row lock: every transaction begins IMMEDIATE.

    SQLite ignores SELECT … FOR UPDATE, and pysqlite begins a transaction only at the first
    write, so two threads of the demo could both read a payment as INITIATED and each write a
    final status. BEGIN IMMEDIATE takes SQLite's write lock when the transaction starts: the
    second waits (up to the connect timeout) and then reads the first one's commit. SQLite has
    one writer at a time anyway; the demo's traffic does not notice. (SQLAlchemy's recipe for
    pysqlite: let SQLAlchemy, not the driver, emit BEGIN.)
    """

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
