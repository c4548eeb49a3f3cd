"""Fixtures of the retention tests: the demo's SQLite app too (tests/core/conftest.py)."""

from tests.core.conftest import restore_api, sqlite_app

__all__ = ["restore_api", "sqlite_app"]
