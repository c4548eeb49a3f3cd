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
