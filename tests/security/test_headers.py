"""Every page PayBridge serves (dashboard, API reference, the shopper's checkout pages, error
pages) forbids framing and sniffing and carries a Content-Security-Policy; every other answer
forbids them too; production adds HSTS. The demo shop, its own app, does the same.

The routes come from the apps' url_maps: a new GET route fails `…_every_get_route…` until this
file knows how to fill in its address, and then its answer is held to the same headers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.extensions import db
from app.models import ApiKey, PspEvent, ReconciliationRun, Subscription
from demo_shop.catalogue import products_on_sale
from tests.disputes.support import dispute_applied
from tests.e2e.shop_flow import add_to_cart, check_out, sign_up
from tests.shop.support import Shopper
from tests.support.factories import PASSWORD, add_notification, add_payment, endpoints_of
from tests.support.pages import logged_in


def assert_protected(response, what: str) -> None:
    """Never framed, never sniffed; a page loads only its own scripts, styles and images."""
    headers = response.headers
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    assert headers.get("X-Frame-Options") == "DENY", what
    policy = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in policy, what
    if response.mimetype == "text/html":
        assert "script-src 'self'" in policy and "style-src 'self'" in policy, what
        assert "'unsafe-inline'" not in policy, what
    else:
        assert "default-src 'none'" in policy, what


def get_routes(flask_app) -> list:
    return sorted(
        (rule for rule in flask_app.url_map.iter_rules() if "GET" in (rule.methods or ())),
        key=lambda rule: rule.rule,
    )


def address(rule, args: dict, overrides: dict) -> str:
    values = {name: overrides.get((rule.endpoint, name), args.get(name)) for name in rule.arguments}
    missing = [name for name, value in values.items() if value is None]
    assert not missing, f"{rule.rule}: add a value for {missing} to this test"
    return rule.build(values, append_unknown=False)[1]


# --- PayBridge -----------------------------------------------------------------------------------


@dataclass
class World:
    paid: str
    conflicted: str
    conflict_id: int
    subscription: str
    notification_id: int
    delivery_id: int  # that notification's one delivery
    event_id: int
    run_id: int
    key_id: int
    dispute: str
    endpoint: str  # merchant A's test-mode notification endpoint


@pytest.fixture
def world(app, tenants, emulator, paid_payment, paid_after_failed) -> World:
    """One of each object a dashboard or checkout page shows, merchant A's."""
    paid = paid_payment(tenants.a_id).public_id
    recurring = paid_payment(tenants.a_id, payment_type="RECC", interval="month", interval_count=1)
    conflict = paid_after_failed(tenants.a_id)
    dispute = dispute_applied(app, emulator, paid_payment(tenants.a_id).public_id)
    with app.app_context():
        notification = add_notification(
            add_payment(tenants.a_id, status="FAILED"), status="failed", attempts=[500]
        )
        event = PspEvent(
            event_id="evt_headers_1",
            event_type="checkout.session.expired",
            payload={"id": "evt_headers_1"},
            outcome=PspEvent.OUTCOME_APPLIED,
        )
        run = ReconciliationRun(trigger="cli", status=ReconciliationRun.STATUS_SUCCEEDED)
        db.session.add_all([event, run])
        db.session.commit()
        subscription = db.session.scalars(
            select(Subscription.public_id).where(Subscription.first_payment_id == recurring.id)
        ).one()
        key_id = db.session.scalars(select(ApiKey.id).where(ApiKey.merchant_id == tenants.a_id))
        found = World(
            paid=paid,
            conflicted=conflict.public_id,
            conflict_id=conflict.conflict_id,
            subscription=subscription,
            notification_id=notification.id,
            delivery_id=notification.deliveries[0].id,
            event_id=event.id,
            run_id=run.id,
            key_id=key_id.first(),
            dispute=dispute,
            endpoint=endpoints_of(tenants.a_id, livemode=False)[0].public_id,
        )
        db.session.remove()
    return found


# The pages that must render (200, HTML) for the walk below to mean something.
PAGES = {
    "api.docs",
    "checkout.checkout_status",
    "dashboard.overview",
    "dashboard.payments",
    "dashboard.payment_detail",
    "dashboard.refund",
    "dashboard.refunds",
    "dashboard.subscriptions",
    "dashboard.subscription_detail",
    "dashboard.events",
    "dashboard.event_detail",
    "dashboard.recon_runs",
    "dashboard.recon_run",
    "dashboard.audit_log",
    "dashboard.endpoints",
    "dashboard.deliveries",
    "dashboard.delivery_detail",
    "dashboard.endpoint_detail",
    "dashboard.rotate_endpoint_secret",
    "dashboard.delete_endpoint",
    "dashboard.api_keys",
    "dashboard.resolve_conflict",
    "dashboard.refund_conflict",
    "dashboard.reconcile",
    "dashboard.resend_notification",
    "dashboard.revoke_api_key",
    "dashboard.recon_run_now",
    "dashboard.cancel_subscription",
    "dashboard.disputes",
    "dashboard.dispute_detail",
    "dashboard.accept_dispute",
}


def test_every_get_route_answers_with_the_headers_and_every_page_with_a_content_policy(
    app, world, tenants
):
    operator = logged_in(app, tenants.op_email)
    args = {
        "payment_id": world.paid,
        "public_id": world.paid,
        "subscription_id": world.subscription,
        "refund_id": "re_none",  # the API answers 401 without a key, before looking
        "conflict_id": world.conflict_id,
        "notification_id": world.notification_id,
        "delivery_id": world.delivery_id,
        "event_id": world.event_id,
        "run_id": world.run_id,
        "key_id": world.key_id,
        "dispute_id": world.dispute,
        "email": "shopper@example.com",  # a customer page (the operator's answer is a 404 page)
        "endpoint_id": world.endpoint,
        "filename": "css/app.css",
    }
    overrides = {
        ("dashboard.subscription_detail", "public_id"): world.subscription,
        ("dashboard.cancel_subscription", "public_id"): world.subscription,
        ("dashboard.refund_conflict", "public_id"): world.conflicted,
        ("dashboard.resolve_conflict", "public_id"): world.conflicted,
        ("dashboard.dispute_detail", "public_id"): world.dispute,
        ("dashboard.accept_dispute", "public_id"): world.dispute,
        **{
            (f"dashboard.{view}", "public_id"): world.endpoint
            for view in ("endpoint_detail", "rotate_endpoint_secret", "delete_endpoint")
        },
    }
    rendered = set()

    for rule in get_routes(app):
        url = address(rule, args, overrides)
        query = {"merchant_id": tenants.a_id} if rule.endpoint.startswith("dashboard.") else {}
        response = operator.get(url, query_string=query, headers={"Accept": "text/html"})

        assert response.status_code < 500, (url, response.status_code)
        assert_protected(response, f"GET {url} ({response.status_code})")
        if response.status_code == 200 and response.mimetype == "text/html":
            rendered.add(rule.endpoint)

    assert PAGES <= rendered, f"these pages did not render: {PAGES - rendered}"


def test_error_pages_carry_the_headers(app, client, client_a, dead_db_app):
    html = {"Accept": "text/html"}
    answers = {
        "404": client.get("/no-such-page", headers=html),
        "403": client_a.get("/dashboard/reconciliation/run", headers=html),
        "400 (no CSRF token)": client.post("/dashboard/login", data={}, headers=html),
        "405": client.post("/checkout/status/pay_x", headers=html),
        "503 (database down)": dead_db_app.test_client().get(
            "/checkout/status/pay_x", headers=html
        ),
        "404 JSON": client.get("/api/v1/no-such-thing"),
    }
    for what, response in answers.items():
        assert response.mimetype == ("application/json" if "JSON" in what else "text/html"), what
        assert_protected(response, what)


def test_only_production_sends_hsts(client, production_app):
    assert "Strict-Transport-Security" not in client.get("/healthz").headers

    production = production_app.test_client()
    for path in ("/healthz", "/dashboard/login", "/api/v1/docs", "/no-such-page"):
        response = production.get(path)
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000", path
        assert_protected(response, path)


def test_the_dashboard_is_never_cached(client_a):
    assert client_a.get("/dashboard/").headers["Cache-Control"] == "no-store"


# --- the demo shop -------------------------------------------------------------------------------


@pytest.fixture
def shop_with_an_order(shop):
    """The demo shop connected to the live PayBridge, and a shopper with one order."""
    shopper = Shopper(shop.app.test_client())
    assert shopper.signup("headers@example.com").status_code == 303
    with shop.app.app_context():
        product_id = products_on_sale()[0].id
    assert shopper.buy(product_id).status_code == 303  # to the hosted checkout page
    return shop, shopper


def test_every_get_route_of_the_demo_shop_answers_with_the_headers(shop_with_an_order):
    shop, shopper = shop_with_an_order
    [order] = shop.orders()
    args = {
        "order_id": order.id,
        "slug": "print-club",
        "filename": "shop.css",
    }
    overrides = {("shop.product", "slug"): "alpine-sunrise"}

    for rule in get_routes(shop.app):
        url = address(rule, args, overrides)
        response = shopper.client.get(url)
        assert response.status_code < 500, (url, response.status_code)
        assert response.headers.get("X-Content-Type-Options") == "nosniff", url
        assert response.headers.get("X-Frame-Options") == "DENY", url
        policy = response.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy, url
        assert "'unsafe-inline'" not in policy, url


# --- in Chromium: the pages still work under their policy ---------------------------------------

# Records what the page's policy blocked (an inline style or script, a foreign source).
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI} line ${e.lineNumber}`));
"""


def violations(page) -> list[str]:
    return page.evaluate("window.__violations")


def open_page(page, url: str) -> None:
    """Go to `url`, whose answer must carry a content policy the browser then enforces."""
    response = page.goto(url)
    assert "frame-ancestors 'none'" in response.headers.get("content-security-policy", ""), url


@pytest.mark.e2e
def test_dashboard_docs_and_checkout_pages_render_in_chromium_with_nothing_blocked(
    page, app, live_server, tenants
):
    with app.app_context():
        payment = add_payment(tenants.a_id, status="SUCCESS")
        db.session.commit()
        public_id = payment.public_id
    page.context.add_init_script(RECORD_VIOLATIONS)
    base = live_server.url

    open_page(page, base + "/dashboard/login")
    page.get_by_label("Email").fill(tenants.op_email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    header = page.locator(".dash-header")
    assert header.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(13, 27, 42)"
    assert violations(page) == []

    open_page(page, f"{base}/dashboard/payments/{public_id}")
    expect(page.get_by_role("heading", name=f"Payment {public_id}")).to_be_visible()
    assert violations(page) == []

    open_page(page, base + "/api/v1/docs")
    expect(page.get_by_role("heading", name="Error codes")).to_be_visible()
    cell = page.locator(".api-docs td").first
    assert cell.evaluate("e => getComputedStyle(e).borderTopStyle") == "solid"
    assert violations(page) == []

    open_page(page, f"{base}/checkout/status/{public_id}")
    expect(page.get_by_role("heading", name="Payment received")).to_be_visible()
    skip_link = page.locator(".skip-link")
    assert skip_link.evaluate("e => getComputedStyle(e).left") == "-999px"  # app.css applies
    assert violations(page) == []


@pytest.mark.e2e
def test_the_shops_confirmation_still_asks_under_its_policy(page, app, shop, emulator):
    page.context.add_init_script(RECORD_VIOLATIONS)
    sign_up(page, shop.url, "csp@example.com")
    add_to_cart(page, shop.url, "Desert Dunes")
    check_out(page, emulator)  # the shop's form answers with a redirect to the PSP's page
    with page.expect_response(lambda answer: answer.url.startswith(shop.url)) as back:
        page.locator("#back").click()
    expect(page.get_by_role("heading", name="You left the checkout")).to_be_visible()
    assert "script-src 'self'" in back.value.headers.get("content-security-policy", "")
    asked = []

    def answer(dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", answer)
    page.get_by_role("button", name="Cancel order").click()

    assert asked == ["Cancel this order? Nothing has been charged."]
    expect(page.get_by_role("heading", name="You left the checkout")).to_be_visible()
    assert violations(page) == []
