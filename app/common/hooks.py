"""Hooks: named points where one domain announces what happened and others react, in order.

The code that makes something happen calls `hook.send(...)` inside its transaction; who reacts
is decided in one place, `app/wiring.py`, which `create_app` runs. Receivers run in the order
they were connected, per application (the test suite builds several), so a reaction that needs
another's work is connected after it. (Blinker, Flask's signal library, keeps its receivers in
a set: it promises no order, and the order here is part of the rules.)
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app

_EXTENSION = "paybridge.hooks"


class Hook:
    """One point to react to; its arguments are documented where it is declared."""

    def __init__(self, name: str) -> None:
        self.name = name

    def connect(self, app: Flask, receiver: Callable[..., None]) -> None:
        app.extensions.setdefault(_EXTENSION, {}).setdefault(self.name, []).append(receiver)

    def receivers(self, app: Flask) -> list[Callable[..., None]]:
        return list(app.extensions.get(_EXTENSION, {}).get(self.name, ()))

    def send(self, *args) -> None:
        for receiver in current_app.extensions.get(_EXTENSION, {}).get(self.name, ()):
            receiver(*args)

    def __repr__(self) -> str:
        return f"<Hook {self.name}>"
