"""The subscription API's answers (tenancy, validation, a PSP that is down) and the
dashboard's subscription pages."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Payment
from tests.subscriptions.conftest import payments_of, renew, subscription_row
from tests.support.api import auth_headers
from tests.support.pages import logged_in, token_for
from tests.support.rows import read


def test_another_merchant_sees_no_subscription_and_bad_requests_are_refused(
    app, client, make_merchant, stripe_delivers, buy_subscription
):
    merchant, key = make_merchant("Shop A")
    _, other_key = make_merchant("Shop B")
    first_id, sub = buy_subscription(merchant.id)
    url = f"/api/v1/subscriptions/{sub['public_id']}"

    for response in (
        client.get(url, headers=auth_headers(other_key)),
        client.post(
            url + "/cancel", json={"at_period_end": False}, headers=auth_headers(other_key)
        ),
        client.get("/api/v1/subscriptions/subs_nope", headers=auth_headers(key)),
    ):
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "SUBSCRIPTION_NOT_FOUND"
    assert client.get(url).status_code == 401

    for body in ({}, {"at_period_end": "yes"}, {"at_period_end": 1}, {"at_period_end": None}):
        response = client.post(url + "/cancel", json=body, headers=auth_headers(key))
        assert response.status_code == 400, body
        error = response.get_json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert "at_period_end" in error["details"]
    response = client.post(url + "/cancel", data="x", headers=auth_headers(key))
    assert response.status_code == 415
    assert subscription_row(app, first_id)["status"] == "active"

    # The payment API names the subscription on RECC payments only.
    first = client.get(
        f"/api/v1/payments/{payments_of(app, first_id)[0]['public_id']}",
        headers=auth_headers(key),
    ).get_json()
    assert first["subscription_id"] == sub["public_id"]
    assert first["psp_subscription_id"] == sub["psp_subscription_id"]
    assert first["parent_payment_id"] is None


def test_cancel_while_the_psp_is_down_changes_nothing_and_can_be_retried(
    app, client, make_merchant, stripe_delivers, buy_subscription
):
    merchant, key = make_merchant()
    first_id, sub = buy_subscription(merchant.id)
    url = f"/api/v1/subscriptions/{sub['public_id']}/cancel"
    stripe_delivers.control(
        "POST", "faults", {"kind": "http_500", "count": 5, "path": "/v1/subscriptions"}
    )
    response = client.post(url, json={"at_period_end": False}, headers=auth_headers(key))
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "PSP_UNAVAILABLE"
    assert response.headers["Retry-After"]
    assert subscription_row(app, first_id)["status"] == "active"

    stripe_delivers.control("DELETE", "faults")
    app.extensions.pop("paybridge_psp", None)  # a fresh circuit breaker
    response = client.post(url, json={"at_period_end": False}, headers=auth_headers(key))
    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled"


def test_dashboard_lists_subscriptions_and_shows_each_charge(
    app, tenants, stripe_delivers, buy_subscription
):
    first_id, sub = buy_subscription(tenants.a_id, reference="plan-dash", amount=1234)
    rows = renew(app, stripe_delivers, first_id, sub)
    sub = subscription_row(app, first_id)

    alice = logged_in(app, tenants.a_email)
    listing = alice.get("/dashboard/subscriptions")
    assert listing.status_code == 200
    html = listing.get_data(as_text=True)
    assert sub["public_id"] in html
    assert "active" in html
    assert sub["current_period_end"].strftime("%Y-%m-%d %H:%M") in html
    assert 'href="/dashboard/subscriptions"' in html  # the nav link

    detail = alice.get(f"/dashboard/subscriptions/{sub['public_id']}")
    assert detail.status_code == 200
    page = detail.get_data(as_text=True)
    for row in rows:
        assert row["public_id"] in page
    assert "plan-dash-r1" in page
    assert "1 day" in page
    assert re.search(r"12[.,]34", page)

    # A renewal's own page in the dashboard (it has no checkout session).
    renewal_page = alice.get(f"/dashboard/payments/{rows[1]['public_id']}")
    assert renewal_page.status_code == 200
    renewal_html = renewal_page.get_data(as_text=True)
    assert f'href="/dashboard/subscriptions/{sub["public_id"]}"' in renewal_html
    assert "a renewal of" in renewal_html and rows[0]["public_id"] in renewal_html

    bob = logged_in(app, tenants.b_email)
    assert sub["public_id"] not in bob.get("/dashboard/subscriptions").get_data(as_text=True)
    assert bob.get(f"/dashboard/subscriptions/{sub['public_id']}").status_code == 404

    # A SALE payment is no subscription's.
    with app.app_context():
        first = db.session.execute(select(Payment).where(Payment.id == first_id)).scalar_one()
        assert first.psp_subscription_id == sub["psp_subscription_id"]
        db.session.remove()


def test_a_merchant_cancels_from_the_dashboard_at_period_end_and_it_is_audited(
    app, tenants, stripe_delivers, buy_subscription
):
    first_id, sub = buy_subscription(tenants.a_id)
    path = f"/dashboard/subscriptions/{sub['public_id']}/cancel"

    bob = logged_in(app, tenants.b_email)
    assert bob.get(path).status_code == 404

    alice = logged_in(app, tenants.a_email)
    detail = alice.get(f"/dashboard/subscriptions/{sub['public_id']}").get_data(as_text=True)
    assert path in detail
    token = token_for(alice, path)
    refused = alice.post(path, data={"csrf_token": token, "when": "sometime"})
    assert refused.status_code == 400
    done = alice.post(path, data={"csrf_token": token, "when": "period_end"})
    assert done.status_code == 302
    row = subscription_row(app, first_id)
    assert (row["status"], row["cancel_at_period_end"]) == ("active", True)
    page = alice.get(done.headers["Location"]).get_data(as_text=True)
    assert "ends at the end of its paid period" in page

    audit = read(
        app,
        lambda: [
            (a.action, a.target_id, a.detail["result"])
            for a in db.session.execute(
                select(AuditLog).where(AuditLog.action.like("sub%"))
            ).scalars()
        ],
    )
    assert audit == [("subscription_cancel", sub["public_id"], "ok")]
