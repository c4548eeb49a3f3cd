"""`flask …` commands for operators, one module per domain."""

from flask import Flask

from app.cli import merchants, modes, notifications, recon, users


def register_all(app: Flask) -> None:
    for module in (merchants, users, notifications, recon, modes):
        module.register(app)
