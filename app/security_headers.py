"""The headers every answer carries, pages, JSON, error pages and static files alike: the
browser may not guess a content type (`nosniff`) or frame it anywhere (`DENY`,
`frame-ancestors 'none'`); a page may load scripts, styles and images from PayBridge only, and
anything else may load nothing; production adds HSTS (the `HSTS` setting). One after_request
for every blueprint, so a new page cannot forget them; a blueprint may set a stricter policy
of its own, which is kept."""

from __future__ import annotations

from flask import Flask, Response

PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
)
NOTHING_POLICY = "default-src 'none'; frame-ancestors 'none'"


def register_security_headers(app: Flask) -> None:
    hsts = app.config.get("HSTS")

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers["X-Content-Type-Options"] = "nosniff"
        headers["X-Frame-Options"] = "DENY"
        headers.setdefault("Referrer-Policy", "same-origin")
        page = response.mimetype == "text/html"
        headers.setdefault("Content-Security-Policy", PAGE_POLICY if page else NOTHING_POLICY)
        if hsts:
            headers["Strict-Transport-Security"] = hsts
        return response
