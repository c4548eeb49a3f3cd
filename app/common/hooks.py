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
    """One point to react to; its arguments are documented where it is declared.

    A `required` hook is one whose reactions keep a promise (a client is told of every final
    status): sending it with nothing connected is a wiring mistake, and fails loudly rather
    than losing the reaction without a trace."""

    def __init__(self, name: str, *, required: bool = False) -> None:
        self.name = name
        self.required = required

    def connect(self, app: Flask, receiver: Callable[..., None]) -> None:
        app.extensions.setdefault(_EXTENSION, {}).setdefault(self.name, []).append(receiver)

    def send(self, *args) -> None:
        receivers = current_app.extensions.get(_EXTENSION, {}).get(self.name, ())
        if not receivers and self.required:
            raise RuntimeError(f"nothing reacts to {self.name}: create_app connects app/wiring.py")
        for receiver in receivers:
            receiver(*args)

    def __repr__(self) -> str:
        return f"<Hook {self.name}>"
