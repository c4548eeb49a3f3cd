"""Every state-changing dashboard POST is refused without a valid CSRF token and changes nothing.

CSRF is on the way the rest of the suite has it (tests/conftest.py sets WTF_CSRF_ENABLED on the
app; Flask-WTF's CSRFProtect guards every POST). For each POST route of the dashboard the same
complete submission is sent with no token, a made-up token and another session's valid token:
each is answered 400 naming the CSRF token, and every table of the database, the PSP (the
emulator's events) and the user's session are exactly as before. Then the same submission with
the session's own token goes through and its audit row says it succeeded, so the refusals above
were about the token and nothing else.

The list of routes is checked against the app's url_map: a new dashboard POST route fails
`test_every_dashboard_post_route_is_covered` until it is listed here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from flask import url_for
from sqlalchemy import select

from app.extensions import db
from app.models import ApiKey, AuditLog, Subscription, SubscriptionStatus
from tests.disputes.support import dispute_applied
from tests.support.factories import PASSWORD, add_notification, add_payment, endpoints_of
from tests.support.pages import logged_in, token_for
from tests.support.psp import stripe_get


@dataclass
class World:
    """The objects the dashboard's actions act on, all merchant A's."""

    initiated: str  # a payment registered at the emulator (expire, reconcile)
    paid: str  # a SUCCESS payment (refund)
    conflicted: str  # a FAILED payment with an open paid-after-failed conflict
    conflict_id: int
    notification_id: int  # a failed notification (resend)
    delivery_id: int  # its failed delivery to `endpoint` (redeliver, one or in bulk)
    api_key_id: int
    subscription: str  # an active subscription (cancel)
    dispute_to_answer: str  # a dispute needing a response (evidence)
    dispute_to_accept: str  # another (accept)
    endpoint: str  # merchant A's test-mode notification endpoint
    signing_secret: str  # its secret


@dataclass(frozen=True)
class Post:
    endpoint: str
    who: str  # "anonymous", "merchant" (merchant A's user) or "operator"
    action: str  # the audit row a valid submission writes
    url_args: Callable[[World], dict] = lambda w: {}
    form: Callable[[World], dict] = lambda w: {}


POSTS = [
    Post("dashboard.login", "anonymous", "login",
         form=lambda w: {"email": "alice@shop-a.example", "password": PASSWORD}),
    Post("dashboard.logout", "merchant", "logout"),
    Post("dashboard.change_password", "merchant", "password_change",
         form=lambda w: {"current": PASSWORD, "new": "a brand new passphrase",
                         "repeat": "a brand new passphrase"}),
    Post("dashboard.refund", "merchant", "payment_refund",
         url_args=lambda w: {"public_id": w.paid},
         form=lambda w: {"amount": "10.00", "reason": "requested_by_customer",
                         "token": "refund-" + "x" * 20, "confirmed": "yes"}),
    Post("dashboard.expire", "merchant", "payment_expire",
         url_args=lambda w: {"public_id": w.initiated},
         form=lambda w: {"reason": "customer called"}),
    Post("dashboard.refund_conflict", "merchant", "conflict_refund",
         url_args=lambda w: {"public_id": w.conflicted, "conflict_id": w.conflict_id}),
    Post("dashboard.resolve_conflict", "merchant", "conflict_resolve",
         url_args=lambda w: {"public_id": w.conflicted, "conflict_id": w.conflict_id},
         form=lambda w: {"note": "refunded by bank transfer"}),
    Post("dashboard.reconcile", "merchant", "payment_reconcile",
         url_args=lambda w: {"public_id": w.initiated}),
    Post("dashboard.resend_notification", "merchant", "notification_resend",
         url_args=lambda w: {"notification_id": w.notification_id}),
    Post("dashboard.redeliver_delivery", "merchant", "delivery_redeliver",
         url_args=lambda w: {"delivery_id": w.delivery_id}),
    Post("dashboard.redeliver_failed", "merchant", "endpoint_redeliver_failed",
         url_args=lambda w: {"public_id": w.endpoint}, form=lambda w: {"upto": w.delivery_id}),
    Post("dashboard.recon_run_now", "operator", "reconciliation_run"),
    Post("dashboard.switch_mode", "merchant", "mode_switch", form=lambda w: {"mode": "live"}),
    Post("dashboard.api_keys", "merchant", "api_key_create",
         form=lambda w: {"name": "csrf", "mode": "test"}),
    Post("dashboard.revoke_api_key", "merchant", "api_key_revoke",
         url_args=lambda w: {"key_id": w.api_key_id}),
    Post("dashboard.set_time_zone", "merchant", "time_zone_change",
         form=lambda w: {"time_zone": "Europe/Paris"}),
    Post("dashboard.endpoints", "merchant", "endpoint_create",
         form=lambda w: {"url": "https://127.0.0.1:8443/hook", "all_events": "y"}),
    Post("dashboard.endpoint_detail", "merchant", "endpoint_update",
         url_args=lambda w: {"public_id": w.endpoint},
         form=lambda w: {"url": "https://127.0.0.1:8443/hook", "all_events": "y"}),
    Post("dashboard.disable_endpoint", "merchant", "endpoint_disable",
         url_args=lambda w: {"public_id": w.endpoint}),
    Post("dashboard.enable_endpoint", "merchant", "endpoint_enable",
         url_args=lambda w: {"public_id": w.endpoint}),
    Post("dashboard.reveal_endpoint_secret", "merchant", "secret_reveal",
         url_args=lambda w: {"public_id": w.endpoint}),
    Post("dashboard.send_test_event", "merchant", "endpoint_test",
         url_args=lambda w: {"public_id": w.endpoint}, form=lambda w: {"type": "refund.failed"}),
    Post("dashboard.rotate_endpoint_secret", "merchant", "secret_rotate",
         url_args=lambda w: {"public_id": w.endpoint}),
    Post("dashboard.delete_endpoint", "merchant", "endpoint_delete",
         url_args=lambda w: {"public_id": w.endpoint}),
    Post("dashboard.cancel_subscription", "merchant", "subscription_cancel",
         url_args=lambda w: {"public_id": w.subscription}, form=lambda w: {"when": "now"}),
    Post("dashboard.dispute_evidence", "merchant", "dispute_evidence",
         url_args=lambda w: {"public_id": w.dispute_to_answer},
         form=lambda w: {"text": "Delivered and signed for.", "confirmed": "yes"}),
    Post("dashboard.accept_dispute", "merchant", "dispute_accept",
         url_args=lambda w: {"public_id": w.dispute_to_accept}),
]  # fmt: skip


def dashboard_post_endpoints(app) -> set[str]:
    return {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if "POST" in (rule.methods or ())
        and (rule.endpoint.startswith("dashboard.") or rule.rule.startswith("/dashboard"))
    }


def test_every_dashboard_post_route_is_covered(app):
    listed = [p.endpoint for p in POSTS]
    assert len(listed) == len(set(listed))
    assert dashboard_post_endpoints(app) == set(listed), (
        "a dashboard POST route is missing from POSTS in tests/dashboard/test_csrf.py "
        "(or listed there but gone)"
    )


@pytest.fixture
def world(app, tenants, emulator, registered_payment, paid_payment, paid_after_failed) -> World:
    """Real objects, at the emulator too, so each action would really do something. The
    emulator is reset (no webhook endpoint: nothing reaches PayBridge behind the test's back)."""
    initiated = registered_payment(tenants.a_id).public_id
    paid = paid_payment(tenants.a_id).public_id
    recurring_id = paid_payment(
        tenants.a_id, payment_type="RECC", interval="month", interval_count=1
    ).id
    conflict = paid_after_failed(tenants.a_id)
    to_answer = dispute_applied(app, emulator, paid_payment(tenants.a_id).public_id)
    to_accept = dispute_applied(app, emulator, paid_payment(tenants.a_id).public_id)
    with app.app_context():
        notification = add_notification(
            add_payment(tenants.a_id, status="FAILED"), status="failed", attempts=[500, 500, 500]
        )
        db.session.commit()
        subscription = db.session.scalars(
            select(Subscription).where(Subscription.first_payment_id == recurring_id)
        ).one()
        assert subscription.status == SubscriptionStatus.ACTIVE
        [key_id] = db.session.scalars(
            select(ApiKey.id).where(ApiKey.merchant_id == tenants.a_id)
        ).all()
        [endpoint] = endpoints_of(tenants.a_id, livemode=False)
        world = World(
            initiated=initiated,
            paid=paid,
            conflicted=conflict.public_id,
            conflict_id=conflict.conflict_id,
            notification_id=notification.id,
            delivery_id=notification.deliveries[0].id,
            api_key_id=key_id,
            subscription=subscription.public_id,
            dispute_to_answer=to_answer,
            dispute_to_accept=to_accept,
            endpoint=endpoint.public_id,
            signing_secret=endpoint.signing_secret,
        )
        db.session.remove()
    return world


def snapshot(app) -> dict[str, list[tuple]]:
    """Every row of every table, in primary-key order."""
    with app.app_context():
        tables = {
            table.name: [
                tuple(row)
                for row in db.session.execute(
                    select(table).order_by(*table.primary_key.columns)
                ).all()
            ]
            for table in db.metadata.sorted_tables
        }
        db.session.remove()
        return tables


def psp_events(emulator) -> list[str]:
    return [e["id"] for e in stripe_get(emulator, "/v1/events", limit=100)["data"]]


def audit_actions(app) -> list[tuple[str, str | None]]:
    """(action, result) of every audit row; result is None for actions that cannot fail."""
    with app.app_context():
        rows = db.session.execute(select(AuditLog.action, AuditLog.detail).order_by(AuditLog.id))
        actions = [(action, (detail or {}).get("result")) for action, detail in rows]
        db.session.remove()
        return actions


def is_logged_in(client) -> bool:
    return client.get("/dashboard/").status_code == 200


@pytest.mark.parametrize("post", POSTS, ids=[p.endpoint.removeprefix("dashboard.") for p in POSTS])
def test_post_without_a_valid_csrf_token_is_refused_and_changes_nothing(
    app, tenants, world, emulator, post
):
    assert app.config["WTF_CSRF_ENABLED"] is True
    email = {"anonymous": None, "merchant": tenants.a_email, "operator": tenants.op_email}
    client = logged_in(app, email[post.who])
    # A token that is valid, but for someone else's session (what an attacker can get).
    other = logged_in(app, None if post.who == "anonymous" else tenants.b_email)
    foreign = token_for(other, "/dashboard/login" if post.who == "anonymous" else "/dashboard/")
    with app.test_request_context():
        url = url_for(post.endpoint, **post.url_args(world))
    form = post.form(world)
    tables, events, audit = snapshot(app), psp_events(emulator), audit_actions(app)

    for name, token in (("none", None), ("made up", "not-a-token"), ("foreign", foreign)):
        data = form if token is None else {**form, "csrf_token": token}
        response = client.post(url, data=data)
        page = response.get_data(as_text=True)
        assert response.status_code == 400, (name, response.status_code, page[:500])
        assert "CSRF" in page, (name, page[:500])
        assert world.signing_secret not in page
        assert snapshot(app) == tables, f"{url} with token {name!r} changed the database"
        assert psp_events(emulator) == events, f"{url} with token {name!r} reached the PSP"
        assert is_logged_in(client) is (post.who != "anonymous")

    # The same submission with the session's own token is done, and succeeds.
    token = token_for(client, "/dashboard/login" if post.who == "anonymous" else "/dashboard/")
    done = client.post(url, data={**form, "csrf_token": token})
    assert done.status_code in (200, 302), (done.status_code, done.get_data(as_text=True)[:500])
    [(action, result)] = audit_actions(app)[len(audit) :]
    assert action == post.action
    assert result in (None, "ok"), result
