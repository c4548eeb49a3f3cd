"""Driving the dashboard's pages with Flask's test client: CSRF tokens, logging in, and an
action's confirmation step."""

from __future__ import annotations

import re

from tests.support.factories import PASSWORD

_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def token_for(client, path: str) -> str:
    """The CSRF token of the page at `path` (which must answer 200)."""
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return csrf_from(response.get_data(as_text=True))


def login(client, email: str, password: str = PASSWORD):
    """Submit the login form as a person does (with its CSRF token); the response."""
    token = csrf_from(client.get("/dashboard/login").get_data(as_text=True))
    return client.post(
        "/dashboard/login",
        data={"email": email, "password": password, "csrf_token": token},
    )


def logged_in(app, email: str | None):
    """A test client of its own, logged in as `email` (None: nobody)."""
    client = app.test_client()
    if email:
        assert login(client, email).status_code == 302
    return client


def confirmed_post(client, url: str, *, button: str, data: dict | None = None):
    """An action as a person takes it: its confirmation page (GET `url`) shows `button`; the
    POST without the page's CSRF token is refused (400); the POST with it is the response."""
    html = client.get(url).get_data(as_text=True)
    assert button in html, f"no {button!r} on {url}"
    assert client.post(url, data=data or {}).status_code == 400
    return client.post(url, data={**(data or {}), "csrf_token": csrf_from(html)})
