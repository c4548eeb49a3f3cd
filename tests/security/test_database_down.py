"""While the database does not answer, the API says so: 503 SERVICE_UNAVAILABLE in the documented
error shape with Retry-After (docs/api.md), the rule the webhook endpoint follows too; once the
database is back, the same requests succeed, with no restart."""

from __future__ import annotations

import os

import pytest
import requests

from tests.conftest import MYSQL_HOST, MYSQL_PORT, MYSQL_USER, TEST_DATABASE
from tests.support.live_server import LiveServer
from tests.support.tcp_proxy import tcp_proxy

CREATE_BODY = {
    "merchant_reference": "order-db-down",
    "amount": 2599,
    "currency": "EUR",
    "success_url": "https://shop.example.com/ok",
    "cancel_url": "https://shop.example.com/cart",
}


def assert_service_unavailable(response: requests.Response, what: str) -> None:
    assert response.status_code == 503, (what, response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json"), what
    error = response.json()["error"]
    assert error["code"] == "SERVICE_UNAVAILABLE", what
    assert error["message"], what
    assert int(response.headers["Retry-After"]) > 0, what


@pytest.fixture
def app_through_proxy(app):
    """A second PayBridge on real HTTP whose database connections pass through a TCP proxy the
    test can cut (the suite's app, beside it, keeps its own connections)."""
    from app import create_app
    from app.extensions import db, limiter

    with tcp_proxy(MYSQL_HOST, MYSQL_PORT) as proxy:
        url = f"mysql+pymysql://{MYSQL_USER}@127.0.0.1:{proxy.port}/{TEST_DATABASE}"
        saved = os.environ.get("DATABASE_URL")
        os.environ["DATABASE_URL"] = url + "?charset=utf8mb4"
        try:
            proxied = create_app("testing")
        finally:
            os.environ["DATABASE_URL"] = saved
        server = LiveServer(proxied).start()
        try:
            yield proxy, server.url
        finally:
            server.stop()
            with proxied.app_context():
                db.engine.dispose()
            limiter.init_app(app)  # the shared limiter back on the suite's app (see dead_db_app)


def test_the_api_answers_503_while_the_database_is_cut_off_and_recovers(
    app_through_proxy, make_merchant
):
    proxy, url = app_through_proxy
    _, key = make_merchant("Shop", "http://127.0.0.1:9/notify")
    auth = {"Authorization": f"Bearer {key}"}

    assert requests.get(f"{url}/api/v1/payments", headers=auth, timeout=30).status_code == 200

    proxy.cut()  # the pooled connection dies, and no new one gets through
    assert_service_unavailable(
        requests.get(f"{url}/api/v1/payments", headers=auth, timeout=30), "list"
    )
    create = requests.post(
        f"{url}/api/v1/payments",
        json=CREATE_BODY,
        headers={**auth, "Idempotency-Key": "db-down-1"},
        timeout=30,
    )
    assert_service_unavailable(create, "create")
    assert_service_unavailable(
        requests.get(f"{url}/api/v1/payments/pay_nosuchpayment", headers=auth, timeout=30), "read"
    )

    proxy.restore()
    back = requests.get(f"{url}/api/v1/payments", headers=auth, timeout=30)
    assert back.status_code == 200, back.text
    assert back.json()["data"] == []  # the create that was refused left nothing behind


def test_an_unreachable_database_at_start_is_a_503_too(dead_db_app):
    """Nothing listening at the database's port at all: every API call, authenticated or not
    yet (the key lookup is the first query), answers 503 rather than 500."""
    client = dead_db_app.test_client()
    auth = {"Authorization": "Bearer pbk_test_whatever"}
    for response, what in (
        (client.get("/api/v1/payments", headers=auth), "list"),
        (client.post("/api/v1/payments", json=CREATE_BODY, headers=auth), "create"),
    ):
        assert response.status_code == 503, what
        assert response.get_json()["error"]["code"] == "SERVICE_UNAVAILABLE", what
        assert int(response.headers["Retry-After"]) > 0, what
