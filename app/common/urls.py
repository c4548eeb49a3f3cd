"""URLs from outside (a merchant, a form, a query string) read in one place.

Python's `urlsplit` raises a bare ValueError on some input (`http://[`, `http://[1:2]/`), and
so does `.port` on a port that is not a number in range; left uncaught that is a 500. Every
parse of an outside URL goes through `split_url`, which reads the port too and turns either
failure into a ValidationError (400 / a form's message / a CLI refusal).
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from app.errors import ValidationError


def split_url(url: str, *, param: str | None = None) -> SplitResult:
    """`urlsplit(url)`, its port read as well; ValidationError when Python cannot parse it."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValidationError(f"The URL cannot be read: {exc}.", param=param) from None
    try:
        parts.port  # noqa: B018  (raises on a malformed or out-of-range port)
    except ValueError as exc:
        raise ValidationError(f"The URL has an invalid port: {exc}.", param=param) from None
    return parts
