"""Dashboard actions: a confirmation step, POST with CSRF, the real service, an audit row."""

from __future__ import annotations

import html as htmllib

from sqlalchemy import select

from app.extensions import db
from app.models import ApiKey, AuditLog, Notification, NotificationEndpoint, Payment
from app.models.merchant import hash_api_key
from tests.support.factories import add_notification, add_payment, endpoints_of
from tests.support.pages import confirmed_post, csrf_from, token_for
from tests.support.psp import pay_session, stripe_get
from tests.support.rows import get_rows


def real_payment(registered_payment, merchant_id, reference="dash-expire-1"):
    """A payment registered at the emulator through the payment service (INITIATED)."""
    payment = registered_payment(
        merchant_id,
        merchant_reference=reference,
        amount=1500,
        description="Dashboard test",
        idempotency_key=f"idem-{reference}",
    )
    return payment.public_id, payment.session_id


def test_expire_needs_confirmation_and_csrf_then_fails_the_payment(
    app, client_a, tenants, emu, registered_payment
):
    public_id, session_id = real_payment(registered_payment, tenants.a_id)
    url = f"/dashboard/payments/{public_id}/expire"

    confirm = client_a.get(url)
    assert confirm.status_code == 200
    assert "Yes, expire this payment" in confirm.get_data(as_text=True)
    token = csrf_from(confirm.get_data(as_text=True))

    refused = client_a.post(url, data={"reason": "no token"})
    assert refused.status_code == 400
    with app.app_context():
        assert (
            db.session.scalar(select(Payment.status).where(Payment.public_id == public_id))
            == "INITIATED"
        )

    done = client_a.post(url, data={"reason": "customer called", "csrf_token": token})
    assert done.status_code == 302
    page = htmllib.unescape(client_a.get(done.headers["Location"]).get_data(as_text=True))
    assert f"Payment {public_id} is now FAILED." in page
    with app.app_context():
        payment = db.session.scalar(select(Payment).where(Payment.public_id == public_id))
        assert payment.status == "FAILED"
        last = payment.history[-1]
        assert (last.from_status, last.to_status, last.source, last.reason) == (
            "INITIATED",
            "FAILED",
            "dashboard",
            "customer called",
        )
    # the session is expired at the PSP too
    session = stripe_get(emu, f"/v1/checkout/sessions/{session_id}")
    assert session["status"] == "expired"
    (row,) = get_rows(app, AuditLog, action="payment_expire")
    assert row.target_id == public_id
    assert row.merchant_id == tenants.a_id
    assert row.detail == {"result": "ok", "status": "FAILED", "reason": "customer called"}


def test_api_key_create_shows_the_raw_key_once_and_revoke_confirms(app, client_a, tenants):
    token = token_for(client_a, "/dashboard/api-keys")
    assert client_a.post("/dashboard/api-keys", data={"name": "no token"}).status_code == 400

    created = client_a.post(
        "/dashboard/api-keys", data={"name": "web shop", "mode": "test", "csrf_token": token}
    )
    assert created.status_code == 200
    page = created.get_data(as_text=True)
    raw = page.split('id="new-api-key">')[1].split("<")[0]
    assert raw.startswith("pbk_test_")
    with app.app_context():
        key = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(raw)))
        assert key.merchant_id == tenants.a_id and key.name == "web shop"
        assert key.livemode is False
        key_id, prefix = key.id, key.prefix
    listing = client_a.get("/dashboard/api-keys").get_data(as_text=True)
    assert raw not in listing
    assert f"{prefix}…" in listing

    revoke_url = f"/dashboard/api-keys/{key_id}/revoke"
    done = confirmed_post(client_a, revoke_url, button="Yes, revoke this key")
    assert done.status_code == 302
    with app.app_context():
        assert db.session.get(ApiKey, key_id).revoked_at is not None
    assert [r.target_id for r in get_rows(app, AuditLog, action="api_key_create")] == [prefix]
    assert [r.target_id for r in get_rows(app, AuditLog, action="api_key_revoke")] == [prefix]


def _a_endpoint(app, tenants, livemode: bool = False) -> NotificationEndpoint:
    """Shop A's endpoint of a mode, made of its notify_url (as migration 0022 makes it)."""
    with app.app_context():
        [endpoint] = endpoints_of(tenants.a_id, livemode=livemode)
        db.session.expunge(endpoint)
        return endpoint


def test_settings_lead_to_the_endpoints_page_which_lists_the_modes_endpoints(
    app, client_a, tenants
):
    endpoint = _a_endpoint(app, tenants)
    settings = client_a.get("/dashboard/settings")
    assert settings.status_code == 200
    # Settings keeps the time zone; the notify URL and its secret became endpoints (0022).
    assert 'href="/dashboard/notification-endpoints"' in settings.get_data(as_text=True)
    page = client_a.get("/dashboard/notification-endpoints").get_data(as_text=True)
    assert "https://a.example/notify" in page and endpoint.public_id in page
    assert endpoint.signing_secret not in page
    assert "b.example" not in page  # another merchant's endpoints are never shown


def test_an_endpoint_is_added_validated_edited_disabled_and_deleted_each_audited(
    app, client_a, tenants
):
    token = token_for(client_a, "/dashboard/notification-endpoints")
    add = "/dashboard/notification-endpoints"
    for data, message in [
        ({"url": "ftp://a.example/x", "events": ["payment.succeeded"]}, "must start with https://"),
        ({"url": "https://a.example/has space", "all_events": "y"}, "must not contain spaces"),
        ({"url": "https://127.0.0.1:8443/hook"}, "Choose at least one event type"),
        (
            {"url": "https://a.example/x", "events": ["payment.exploded"]},
            "'payment.exploded' is not a valid choice",
        ),
    ]:
        response = client_a.post(add, data={**data, "csrf_token": token})
        assert response.status_code == 400, data
        assert message in htmllib.unescape(response.get_data(as_text=True))
    no_csrf = client_a.post(add, data={"url": "https://127.0.0.1:8443/h", "all_events": "y"})
    assert no_csrf.status_code == 400
    assert len(get_rows(app, NotificationEndpoint, merchant_id=tenants.a_id)) == 2

    created = client_a.post(
        add,
        data={
            "url": "https://127.0.0.1:8443/refunds",
            "description": "refunds service",
            "events": ["refund.succeeded", "refund.failed"],
            "csrf_token": token,
        },
    )
    assert created.status_code == 200
    page = created.get_data(as_text=True)
    [new] = [
        e
        for e in get_rows(app, NotificationEndpoint, merchant_id=tenants.a_id)
        if e.url.endswith("/refunds")
    ]
    assert new.signing_secret in page  # shown on the answer that made it
    assert created.headers["Cache-Control"] == "no-store"
    assert (new.livemode, new.event_types) == (False, ["refund.succeeded", "refund.failed"])
    assert new.signing_secret not in client_a.get(f"{add}/{new.public_id}").get_data(as_text=True)

    edited = client_a.post(
        f"{add}/{new.public_id}",
        data={"url": new.url, "description": "money back", "all_events": "y", "csrf_token": token},
    )
    assert edited.status_code == 302
    disabled = client_a.post(f"{add}/{new.public_id}/disable", data={"csrf_token": token})
    assert disabled.status_code == 302
    assert client_a.post(f"{add}/{new.public_id}/enable").status_code == 400  # no CSRF token
    stored = get_rows(app, NotificationEndpoint, public_id=new.public_id)[0]
    assert (stored.description, stored.event_types, stored.enabled) == ("money back", ["*"], False)

    done = confirmed_post(client_a, f"{add}/{new.public_id}/delete", button="Yes, delete it")
    assert done.status_code == 302
    assert get_rows(app, NotificationEndpoint, public_id=new.public_id)[0].deleted_at is not None
    assert client_a.get(f"{add}/{new.public_id}").status_code == 404
    actions = [r.action for r in get_rows(app, AuditLog, merchant_id=tenants.a_id)]
    for action in ("endpoint_create", "endpoint_update", "endpoint_disable", "endpoint_delete"):
        assert action in actions
    (update,) = get_rows(app, AuditLog, action="endpoint_update")
    assert update.detail["event_types"] == [["refund.succeeded", "refund.failed"], ["*"]]
    for row in get_rows(app, AuditLog, merchant_id=tenants.a_id):
        assert new.signing_secret not in str(row.detail)


def test_signing_secret_is_revealed_by_post_only_and_rotation_keeps_the_old_one(
    app, client_a, client_b, tenants
):
    endpoint = _a_endpoint(app, tenants)
    original = endpoint.signing_secret
    url = f"/dashboard/notification-endpoints/{endpoint.public_id}"
    page = client_a.get(url).get_data(as_text=True)
    assert original not in page
    token = csrf_from(page)
    assert client_a.post(f"{url}/secret/reveal").status_code == 400
    revealed = client_a.post(f"{url}/secret/reveal", data={"csrf_token": token})
    assert revealed.status_code == 200
    assert original in revealed.get_data(as_text=True)
    assert revealed.headers["Cache-Control"] == "no-store"
    assert len(get_rows(app, AuditLog, action="secret_reveal")) == 1
    assert client_b.get(url).status_code == 404  # another merchant's endpoint

    done = confirmed_post(client_a, f"{url}/secret/rotate", button="Yes, rotate the secret")
    assert done.status_code == 200
    rotated = get_rows(app, NotificationEndpoint, public_id=endpoint.public_id)[0]
    assert rotated.signing_secret != original and rotated.signing_secret.startswith("whsec_")
    assert rotated.previous_signing_secret == original
    assert rotated.signing_secret in done.get_data(as_text=True)
    # The page says until when the previous secret signs too (24 hours by default).
    assert rotated.previous_secret_signs_until() == rotated.previous_signing_secret_expires_at
    assert "the previous secret signs until" in done.get_data(as_text=True)
    assert len(get_rows(app, AuditLog, action="secret_rotate")) == 1
    # the secret itself never lands in the audit log
    with app.app_context():
        for row in db.session.scalars(select(AuditLog)):
            assert original not in str(row.detail)


def test_audit_page_lists_actions_and_has_no_way_to_change_them(app, client_a, client_b, tenants):
    endpoint = _a_endpoint(app, tenants)
    url = f"/dashboard/notification-endpoints/{endpoint.public_id}"
    client_a.post(f"{url}/secret/reveal", data={"csrf_token": token_for(client_a, url)})
    page = client_a.get("/dashboard/audit").get_data(as_text=True)
    assert "<td>secret reveal</td>" in page and "<td>login</td>" in page
    assert tenants.a_email in page
    # B's audit page shows B's log-in only
    page_b = client_b.get("/dashboard/audit").get_data(as_text=True)
    assert "<td>secret reveal</td>" not in page_b and "<td>login</td>" in page_b
    filtered = client_a.get("/dashboard/audit?action=login").get_data(as_text=True)
    assert "<td>secret reveal</td>" not in filtered and "<td>login</td>" in filtered
    for method in ("post", "put", "delete", "patch"):
        assert getattr(client_a, method)("/dashboard/audit").status_code in (400, 405)


def test_reconcile_this_payment_applies_the_psp_truth(
    app, client_a, tenants, emu, registered_payment
):
    public_id, session_id = real_payment(registered_payment, tenants.a_id, "dash-recon-1")
    # The shopper pays, but no webhook reaches PayBridge (no endpoint is registered here).
    pay_session(emu, session_id)
    url = f"/dashboard/payments/{public_id}/reconcile"
    done = confirmed_post(client_a, url, button="Yes, reconcile now")
    assert done.status_code == 302
    page = htmllib.unescape(client_a.get(done.headers["Location"]).get_data(as_text=True))
    assert f"Reconciled {public_id}: INITIATED → SUCCESS" in page
    with app.app_context():
        payment = db.session.scalar(select(Payment).where(Payment.public_id == public_id))
        assert payment.status == "SUCCESS"
        assert payment.history[-1].source == "recon"
    (row,) = get_rows(app, AuditLog, action="payment_reconcile")
    assert row.detail["result"] == "ok"
    assert row.detail["status"] == "SUCCESS"


def test_resend_a_failed_notification_delivers_it_again(app, client_a, tenants, receiver):
    from app.notifications.delivery import deliver_due

    with app.app_context():
        for endpoint in endpoints_of(tenants.a_id):
            endpoint.url = receiver.url
        payment = add_payment(tenants.a_id, status="SUCCESS", reference="dash-resend-1")
        note = add_notification(payment, status="failed", attempts=[500, 500, 500])
        db.session.commit()
        note_id, msg_id = note.id, note.public_id
    url = f"/dashboard/notifications/{note_id}/resend"
    done = confirmed_post(client_a, url, button="Yes, resend")
    assert done.status_code == 302
    with app.app_context():
        assert db.session.get(Notification, note_id).status == "pending"
    # While it is pending, a second resend is refused with a reason, and that is audited too.
    again = client_a.post(
        url, data={"csrf_token": csrf_from(client_a.get(url).get_data(as_text=True))}
    )
    page = htmllib.unescape(client_a.get(again.headers["Location"]).get_data(as_text=True))
    assert "The notification was not resent" in page
    with app.app_context():
        assert deliver_due() == 1  # the cycle the worker's pump runs
        db.session.expire_all()
        assert db.session.get(Notification, note_id).status == "delivered"
    receiver.wait_for(1)
    assert receiver.requests[-1].headers["webhook-id"] == msg_id
    first, second = get_rows(app, AuditLog, action="notification_resend")
    assert first.target_id == msg_id and first.detail["result"] == "ok"
    assert second.detail == {"result": "error", "code": "NOTIFICATION_PENDING"}


def test_audit_rows_cannot_be_changed_or_deleted_through_the_orm(app, client_a):
    import pytest

    from app.accounts.audit import AuditLogIsAppendOnly

    with app.app_context():
        row = db.session.scalar(select(AuditLog).where(AuditLog.action == "login"))
        row.detail = {"forged": True}
        with pytest.raises(AuditLogIsAppendOnly):
            db.session.commit()
        db.session.rollback()
        row = db.session.scalar(select(AuditLog).where(AuditLog.action == "login"))
        db.session.delete(row)
        with pytest.raises(AuditLogIsAppendOnly):
            db.session.commit()
        db.session.rollback()
        assert db.session.scalar(select(AuditLog).where(AuditLog.action == "login")).detail is None
