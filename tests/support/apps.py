"""A second PayBridge app in the test process, built from its own environment variables."""

from __future__ import annotations

import os
from contextlib import contextmanager

from app.extensions import db


@contextmanager
def app_with_env(**overrides: str):
    """A second app (`create_app("testing")`) built with these environment variables."""
    from app import create_app

    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        other = create_app("testing")
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    try:
        yield other
    finally:
        with other.app_context():
            db.engine.dispose()
