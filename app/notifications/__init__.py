"""Signed notifications to client apps: an outbox written with the status change, sent by jobs."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Hook notification dispatch into the app (filled in by the outcomes issue)."""
