"""`flask …` commands for operators, one module per domain."""

from flask import Flask


def register_all(app: Flask) -> None:
    from app.cli import merchants, notifications, recon

    for module in (merchants, notifications, recon):
        module.register(app)
