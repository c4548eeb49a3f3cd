"""`flask …` commands for operators, one module per domain."""

from flask import Flask

from app.cli import (
    doctor,
    merchants,
    modes,
    notifications,
    recon,
    reporting,
    retention,
    stripe,
    users,
)


def register_all(app: Flask) -> None:
    for module in (
        merchants,
        users,
        notifications,
        recon,
        retention,
        reporting,
        modes,
        stripe,
        doctor,
    ):
        module.register(app)
