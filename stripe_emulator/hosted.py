"""The hosted checkout page (filled in by step 3)."""

from __future__ import annotations

from werkzeug.wrappers import Request, Response


def handle(emu, request: Request) -> Response:
    return Response("Checkout page coming soon", mimetype="text/plain")
