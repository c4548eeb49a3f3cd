"""Commands: filled in by the issue that builds this domain."""

from flask import Flask


def register(app: Flask) -> None:
    pass
