"""URLs Python cannot read (`http://[`, `http://[1:2]/`, `http://[zz]/`, a port out of range)
are refused cleanly wherever they come in: urllib's urlsplit and `.port` raise a bare
ValueError on them, which was a 500 (login's `next`, the dashboard's notify URL, the create's
return URLs, then the public checkout pages) or a traceback (the CLI). Every parse of an outside
URL now goes through app/common/urls.py's `split_url`.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.common.urls import split_url
from app.errors import ValidationError
from app.extensions import db
from app.models import Merchant, NotificationEndpoint, Payment, PaymentStatus
from app.payments.returns import with_payment_id
from tests.support.api import auth_headers, create_body
from tests.support.pages import csrf_from, token_for

UNREADABLE = ["http://[", "//[", "http://[1:2]/ok", "http://[zz]/", "http://a.example:99999/",
              "http://a.example:port/", "https://[::1/ok"]  # fmt: skip


@pytest.mark.parametrize("url", UNREADABLE)
def test_split_url_refuses_what_urlsplit_cannot_read(url):
    with pytest.raises(ValidationError) as refused:
        split_url(url, param="notify_url")
    assert refused.value.param == "notify_url"
    assert refused.value.message.startswith(("The URL cannot be read", "The URL has an invalid"))


@pytest.mark.parametrize("nxt", ["//[", "http://[", "http://[1:2]/dashboard", "//[::1/dashboard"])
def test_logging_in_with_an_unreadable_next_goes_to_the_overview(app, tenants, nxt):
    client = app.test_client()
    token = csrf_from(client.get("/dashboard/login").get_data(as_text=True))
    answer = client.post(
        "/dashboard/login",
        data={"email": tenants.a_email, "password": "correct horse battery", "next": nxt,
              "csrf_token": token},
    )  # fmt: skip
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/dashboard/"


@pytest.mark.parametrize("referrer", ["https://[", "https://localhost:99999/", "https://[zz]/"])
def test_an_https_form_post_with_an_unreadable_referrer_is_a_csrf_failure(app, tenants, referrer):
    """Over HTTPS (always, in production) the CSRF check reads the Referer's port: a header
    urllib cannot read is refused as a CSRF failure, not a 500."""
    client = app.test_client()
    page = client.get("/dashboard/login", base_url="https://localhost")
    answer = client.post(
        "/dashboard/login",
        base_url="https://localhost",
        headers={"Referer": referrer},
        data={"email": tenants.a_email, "password": "correct horse battery",
              "csrf_token": csrf_from(page.get_data(as_text=True))},
    )  # fmt: skip
    assert answer.status_code == 400
    assert "referrer" in answer.get_data(as_text=True).lower()


@pytest.mark.parametrize(
    ("url", "why"),
    [("http://[zz]/", "cannot be read"), ("http://[", "cannot be read"),
     ("http://a.example:99999/", "invalid port")],
)  # fmt: skip
def test_the_dashboard_refuses_an_unreadable_notify_url(app, client_a, tenants, url, why):
    token = token_for(client_a, "/dashboard/notification-endpoints")
    answer = client_a.post(
        "/dashboard/notification-endpoints",
        data={"url": url, "all_events": "y", "csrf_token": token},
    )
    assert answer.status_code == 400
    assert why in answer.get_data(as_text=True)
    with app.app_context():
        urls = db.session.scalars(
            select(NotificationEndpoint.url).where(NotificationEndpoint.merchant_id == tenants.a_id)
        ).all()
    assert urls == ["https://a.example/notify"] * 2


@pytest.mark.parametrize(
    ("url", "why"),
    [("http://[zz]/", "cannot be read"), ("http://[", "cannot be read"),
     ("http://a.example:99999/", "invalid port")],
)  # fmt: skip
def test_the_cli_refuses_an_unreadable_notify_url(app, runner, url, why):
    result = runner.invoke(args=["merchants", "create", "Shop", "--notify-url", url])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "--notify-url" in result.output and why in result.output
    with app.app_context():
        assert db.session.scalars(select(Merchant)).all() == []


@pytest.mark.parametrize("field", ["success_url", "cancel_url"])
@pytest.mark.parametrize("url", ["http://[1:2]/ok", "http://[zz]/ok", "http://shop.example:99999/"])
def test_the_api_refuses_an_unreadable_return_url(app, client, make_merchant, field, url):
    _merchant, api_key = make_merchant("Shop")
    answer = client.post(
        "/api/v1/payments", json=create_body(**{field: url}), headers=auth_headers(api_key)
    )
    assert answer.status_code == 400, answer.get_data(as_text=True)
    error = answer.get_json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in str(error), error
    with app.app_context():
        assert db.session.scalars(select(Payment)).all() == []


def test_the_checkout_pages_of_a_stored_unreadable_url_never_fail(client, make_payment):
    """Rows saved before the API refused such URLs: the shopper lands on PayBridge's status
    page instead of the merchant's, which has no link back."""
    payment = make_payment(
        PaymentStatus.SUCCESS, success_url="http://[1:2]/ok", cancel_url="http://[zz]/cart"
    )
    status_page = f"/checkout/status/{payment.public_id}"
    for path in (f"/checkout/return/{payment.public_id}", f"/checkout/cancel/{payment.public_id}"):
        answer = client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["Location"] == status_page
    page = client.get(status_page)
    assert page.status_code == 200
    assert "http://[" not in page.get_data(as_text=True)
    assert with_payment_id("http://[1:2]/ok", payment.public_id) is None
