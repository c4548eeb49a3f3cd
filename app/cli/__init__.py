"""`flask …` commands for operators, one module per domain."""

from flask import Flask


def register_all(app: Flask) -> None:
    from app.cli import demo, merchants, notifications, recon

    for module in (merchants, demo, notifications, recon):
        module.register(app)
