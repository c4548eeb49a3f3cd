"""`flask …` commands for operators, one module per domain."""

from flask import Flask

from app.cli import merchants, notifications, recon, users


def register_all(app: Flask) -> None:
    for module in (merchants, users, notifications, recon):
        module.register(app)
