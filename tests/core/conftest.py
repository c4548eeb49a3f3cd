"""Fixtures of the core tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def restore_api(app):
    """A second app re-binds the shared extensions; bind them back to the suite's app."""
    yield
    from flask_smorest.utils import PrefixedMappingProxy

    from app.extensions import api

    api._app = app
    api.config = PrefixedMappingProxy(app.config, api.config_prefix)


@pytest.fixture
def sqlite_app(app, tmp_path, monkeypatch, restore_api):
    """The demo's embedded database: a second app on SQLite, schema from the migrations."""
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    demo = create_app("testing")
    with demo.app_context():
        upgrade()
    yield demo
    with demo.app_context():
        db.engine.dispose()
