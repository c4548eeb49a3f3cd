"""Dashboard fixtures: two merchants, a user for each, and an operator."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.dashboard.support import login, make_user


@dataclass
class Tenants:
    a_id: int
    b_id: int
    a_key: str
    b_key: str
    a_email: str = "alice@shop-a.example"
    b_email: str = "bob@shop-b.example"
    op_email: str = "ops@paybridge.example"


@pytest.fixture
def tenants(app, make_merchant) -> Tenants:
    a, a_key = make_merchant("Shop A", "https://a.example/notify")
    b, b_key = make_merchant("Shop B", "https://b.example/notify")
    t = Tenants(a_id=a.id, b_id=b.id, a_key=a_key, b_key=b_key)
    make_user(app, t.a_id, t.a_email)
    make_user(app, t.b_id, t.b_email)
    make_user(app, None, t.op_email, operator=True)
    return t


@pytest.fixture
def client_a(app, tenants):
    client = app.test_client()
    assert login(client, tenants.a_email).status_code == 302
    return client


@pytest.fixture
def client_b(app, tenants):
    client = app.test_client()
    assert login(client, tenants.b_email).status_code == 302
    return client


@pytest.fixture
def client_op(app, tenants):
    client = app.test_client()
    assert login(client, tenants.op_email).status_code == 302
    return client


@pytest.fixture(autouse=True)
def _print_crashes(monkeypatch):
    """A 500 in a dashboard test prints its traceback (the app logs it where pytest can't see)."""
    import traceback

    import app.errors as errors

    original = errors.log.exception

    def log_and_print(*args, **kwargs):
        traceback.print_exc()
        original(*args, **kwargs)

    monkeypatch.setattr(errors.log, "exception", log_and_print)
