"""Each merchant user sees only its merchant's data; operators see all; outside the scope is 404."""

from __future__ import annotations

import re

import pytest

from app.extensions import db
from app.models import ApiKey, PspEvent
from tests.support.factories import add_notification, add_payment
from tests.support.pages import token_for

ROW_ID = re.compile(r'href="/dashboard/payments/(pay_[A-Za-z0-9]+)"')


@pytest.fixture
def two_payments(app, tenants):
    with app.app_context():
        a = add_payment(tenants.a_id, reference="same-ref", status="SUCCESS")
        b = add_payment(tenants.b_id, reference="same-ref", status="FAILED")
        note_b = add_notification(b, status="failed", attempts=[500, 500, 500])
        event_b = PspEvent(
            event_id="evt_b_1",
            event_type="checkout.session.expired",
            payment_id=b.id,
            payload={"id": "evt_b_1"},
            outcome=PspEvent.OUTCOME_APPLIED,
        )
        db.session.add(event_b)
        db.session.commit()
        return {
            "a": a.public_id,
            "b": b.public_id,
            "note_b": note_b.id,
            "event_b": event_b.id,
        }


def test_merchant_sees_only_its_own_payments(client_a, two_payments):
    html = client_a.get("/dashboard/payments").get_data(as_text=True)
    assert ROW_ID.findall(html) == [two_payments["a"]]
    # A merchant_id parameter does not widen a merchant user's scope.
    html = client_a.get(f"/dashboard/payments?merchant_id={999}").get_data(as_text=True)
    assert ROW_ID.findall(html) == [two_payments["a"]]


def test_another_merchants_payment_by_url_is_not_found(client_a, two_payments):
    response = client_a.get(f"/dashboard/payments/{two_payments['b']}")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "We can&#39;t find that page" in html or "We can't find that page" in html
    assert "Traceback" not in html
    assert client_a.get(f"/dashboard/payments/{two_payments['a']}").status_code == 200


def test_actions_on_another_merchants_objects_are_not_found(client_a, two_payments):
    b = two_payments["b"]
    assert client_a.get(f"/dashboard/payments/{b}/expire").status_code == 404
    assert client_a.get(f"/dashboard/payments/{b}/reconcile").status_code == 404
    resend = f"/dashboard/notifications/{two_payments['note_b']}/resend"
    assert client_a.get(resend).status_code == 404
    token = token_for(client_a, "/dashboard/")
    assert client_a.post(resend, data={"csrf_token": token}).status_code == 404
    assert client_a.get(f"/dashboard/events/{two_payments['event_b']}").status_code == 404


def test_events_list_shows_only_own_events(client_a, client_b, two_payments):
    assert "evt_b_1" not in client_a.get("/dashboard/events").get_data(as_text=True)
    assert "evt_b_1" in client_b.get("/dashboard/events").get_data(as_text=True)


def test_csv_export_is_scoped_too(client_a, two_payments):
    body = client_a.get("/dashboard/payments/export.csv").get_data(as_text=True)
    assert two_payments["a"] in body
    assert two_payments["b"] not in body


def test_another_merchants_api_key_cannot_be_revoked(app, client_a, tenants):
    with app.app_context():
        b_key_id = db.session.query(ApiKey.id).filter_by(merchant_id=tenants.b_id).scalar()
    url = f"/dashboard/api-keys/{b_key_id}/revoke"
    assert client_a.get(url).status_code == 404
    token = token_for(client_a, "/dashboard/api-keys")
    assert client_a.post(url, data={"csrf_token": token}).status_code == 404
    with app.app_context():
        assert db.session.get(ApiKey, b_key_id).revoked_at is None


def test_operator_sees_every_merchant_and_can_filter(client_op, tenants, two_payments):
    html = client_op.get("/dashboard/payments").get_data(as_text=True)
    assert set(ROW_ID.findall(html)) == {two_payments["a"], two_payments["b"]}
    html = client_op.get(f"/dashboard/payments?merchant_id={tenants.b_id}").get_data(as_text=True)
    assert ROW_ID.findall(html) == [two_payments["b"]]
    assert client_op.get(f"/dashboard/payments/{two_payments['b']}").status_code == 200
    assert "evt_b_1" in client_op.get("/dashboard/events").get_data(as_text=True)


def test_run_reconciliation_now_is_for_operators_only(client_a):
    response = client_a.get("/dashboard/reconciliation/run")
    assert response.status_code == 403
    assert "not allowed" in response.get_data(as_text=True)


def test_operator_picks_a_merchant_for_keys_and_settings(client_op, tenants):
    page = client_op.get("/dashboard/notification-endpoints").get_data(as_text=True)
    assert "Choose which one" in page
    page = client_op.get(f"/dashboard/notification-endpoints?merchant_id={tenants.b_id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Notification endpoints of Shop B" in text and "https://b.example/notify" in text
    assert "a.example" not in text
    missing = client_op.get("/dashboard/notification-endpoints?merchant_id=999999")
    assert missing.status_code == 404
