"""Log-in, log-out, sessions, CSRF and the log-in rate limit, through the real app."""

from __future__ import annotations

from app.models import AuditLog
from tests.support.factories import PASSWORD
from tests.support.pages import csrf_from, login, token_for
from tests.support.rows import get_rows


def test_pages_need_a_login(client, tenants):
    response = client.get("/dashboard/payments?status=SUCCESS")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/dashboard/login?next=")


def test_login_lands_on_overview_and_is_audited_with_ip_and_agent(app, client, tenants):
    response = client.post(
        "/dashboard/login",
        data={
            "email": tenants.a_email,
            "password": PASSWORD,
            "csrf_token": token_for(client, "/dashboard/login"),
        },
        headers={"User-Agent": "pytest-browser/1.0"},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard/"
    page = client.get("/dashboard/")
    assert page.status_code == 200
    assert "Overview" in page.get_data(as_text=True)
    (row,) = get_rows(app, AuditLog, action="login")
    assert row.merchant_id == tenants.a_id
    assert row.ip == "127.0.0.1"
    assert row.user_agent == "pytest-browser/1.0"


def test_session_cookie_is_httponly_and_samesite_lax(client, tenants):
    response = login(client, tenants.a_email)
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_wrong_password_and_unknown_email_get_the_same_answer(app, client, tenants):
    wrong = login(client, tenants.a_email, "not the password")
    unknown = login(client, "nobody@example.com", "not the password")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "The email or the password is wrong." in response.get_data(as_text=True)
    assert client.get("/dashboard/").status_code == 302
    failed = get_rows(app, AuditLog, action="login_failed")
    assert sorted(r.detail["email"] for r in failed) == [
        "alice@shop-a.example",
        "nobody@example.com",
    ]
    assert {r.merchant_id for r in failed} == {tenants.a_id, None}


def test_login_without_csrf_token_is_refused(client, tenants):
    response = client.post(
        "/dashboard/login", data={"email": tenants.a_email, "password": PASSWORD}
    )
    assert response.status_code == 400
    assert client.get("/dashboard/").status_code == 302


def log_in_then_go(client, email: str, token: str, next_url: str):
    """The login form posted with a `next` page to go to afterwards; the response."""
    return client.post(
        "/dashboard/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token, "next": next_url},
    )


def test_next_only_redirects_inside_the_dashboard(client, tenants):
    token = token_for(client, "/dashboard/login")
    response = log_in_then_go(client, tenants.a_email, token, "https://evil.example/dashboard")
    assert response.headers["Location"] == "/dashboard/"


def test_next_returns_to_the_page_asked_for(client, tenants):
    page = client.get("/dashboard/login?next=/dashboard/payments?status=FAILED")
    token = csrf_from(page.get_data(as_text=True))
    assert 'value="/dashboard/payments?status=FAILED"' in page.get_data(as_text=True)
    response = log_in_then_go(client, tenants.a_email, token, "/dashboard/payments?status=FAILED")
    assert response.headers["Location"] == "/dashboard/payments?status=FAILED"


def test_logout_is_a_post_with_csrf(app, client_a):
    assert client_a.get("/dashboard/logout").status_code == 405
    assert client_a.post("/dashboard/logout").status_code == 400
    assert client_a.get("/dashboard/").status_code == 200
    token = token_for(client_a, "/dashboard/")
    response = client_a.post("/dashboard/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert client_a.get("/dashboard/").status_code == 302
    assert len(get_rows(app, AuditLog, action="logout")) == 1


def test_login_is_rate_limited_per_ip_and_email(client, tenants):
    for _ in range(5):
        assert login(client, tenants.a_email, "guess").status_code == 401
    # The sixth try within the minute is refused even with the right password …
    limited = login(client, tenants.a_email, PASSWORD)
    assert limited.status_code == 429
    assert "Too many attempts" in limited.get_data(as_text=True)
    # … while another account from the same address can still log in.
    assert login(client, tenants.b_email, PASSWORD).status_code == 302


def test_dashboard_responses_are_not_cached_or_framed(client_a):
    response = client_a.get("/dashboard/")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_successful_logins_do_not_use_up_the_allowance(app, tenants):
    for _ in range(7):
        client = app.test_client()
        assert login(client, tenants.a_email).status_code == 302
