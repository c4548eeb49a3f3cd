"""Every event type's OpenAPI component holds what PayBridge really sends: payloads of
notifications made by real flows (the emulator over HTTP, the API), read back through the
Events API and as stored for delivery, validated with a JSON-schema validator against the
document the API serves. The data components are exact (every field required, no other
allowed), so a field the outbox adds or drops without the document fails here."""

from __future__ import annotations

import copy

from openapi_schema_validator import OAS30Validator

from app.extensions import db
from app.models import Notification, Refund
from tests.disputes.support import open_dispute, recorded_dispute
from tests.subscriptions.conftest import TIMEOUT, bill_next_period, subscription_row
from tests.support.api import auth_headers, post_refund
from tests.support.factories import new_reference
from tests.support.psp import pay_session, stripe_get, wait_for_deliveries
from tests.support.rows import get_row
from tests.support.waiting import wait_for_payment_status, wait_until


def _validator(spec: dict, component: str) -> OAS30Validator:
    return OAS30Validator(
        {"$ref": f"#/components/schemas/{component}", "components": spec["components"]}
    )


def _errors(spec: dict, component: str, payload: dict) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator(spec, component).iter_errors(payload)
    ]


def _component_of(spec: dict, event_type: str) -> str:
    mapping = spec["components"]["schemas"]["Event"]["discriminator"]["mapping"]
    return mapping[event_type].rsplit("/", 1)[-1]


def assert_payloads_match(client, key: str, expected_types: set[str]) -> None:
    """Every event of the key's merchant, as the Events API answers it and as stored for its
    endpoints, is valid against its type's component and against Event (the oneOf); the
    flows produced each of `expected_types`."""
    spec = client.get("/api/v1/openapi.json").get_json()
    listed = client.get("/api/v1/events?limit=100", headers=auth_headers(key)).get_json()
    events = listed["data"]
    assert expected_types <= {e["type"] for e in events}, sorted({e["type"] for e in events})
    with client.application.app_context():
        stored = {
            n.public_id: n.payload
            for n in db.session.scalars(
                db.select(Notification).where(Notification.public_id.in_([e["id"] for e in events]))
            )
        }
    for event in events:
        component = _component_of(spec, event["type"])
        for payload in (event, stored[event["id"]]):
            assert _errors(spec, component, payload) == [], (event["type"], payload)
            assert _errors(spec, "Event", payload) == [], (event["type"], payload)
    # The schemas are strict: an extra field or a missing one in `data` (or in what it
    # embeds) is refused, so the checks above would catch a drift.
    for event in {e["type"]: e for e in events}.values():
        component = _component_of(spec, event["type"])
        data = event["data"]
        nested = next((k for k in ("payment", "attempt") if isinstance(data.get(k), dict)), None)
        for target in [[], [nested]] if nested else [[]]:
            extra, missing = copy.deepcopy(event), copy.deepcopy(event)
            for body in (extra, missing):
                inner = body["data"]
                for key_ in target:
                    inner = inner[key_]
                if body is extra:
                    inner["undocumented"] = 1
                else:
                    del inner["id" if "id" in inner else "outcome"]
            assert _errors(spec, component, extra), (event["type"], target, "extra field")
            assert _errors(spec, component, missing), (event["type"], target, "missing field")


def test_payment_and_refund_events_match_their_schemas(
    app, client, make_merchant, registered_payment, stripe_delivers
):
    merchant, key = make_merchant()
    paid = registered_payment(merchant.id, amount=5000)
    pay_session(stripe_delivers, paid.session_id, card="4000000000009995")  # declined
    wait_for_deliveries(stripe_delivers, event_type="payment_intent.payment_failed", count=1)
    pay_session(stripe_delivers, paid.session_id, card="4242424242424242")
    wait_for_payment_status(app, paid.id, "SUCCESS")

    fault = {"kind": "refund_fail", "count": 1, "failure_reason": "lost_or_stolen_card"}
    stripe_delivers.control("POST", "faults", fault)
    failing = post_refund(client, key, paid.public_id, {"amount": 1000}).get_json()["id"]
    wait_until(
        lambda: get_row(app, Refund, public_id=failing).status == "failed",
        what="refund.failed",
        timeout=15,
    )
    refunded = post_refund(client, key, paid.public_id, {"amount": 1000}).get_json()["id"]
    wait_until(
        lambda: get_row(app, Refund, public_id=refunded).status == "succeeded",
        what="refund.succeeded",
        timeout=15,
    )

    sepa = registered_payment(merchant.id, amount=1200)  # pending, then fails at settlement
    pay_session(stripe_delivers, sepa.session_id, iban="DE62370400440532013001")
    wait_for_payment_status(app, sepa.id, "PENDING")
    stripe_delivers.control("POST", f"checkout/sessions/{sepa.session_id}/settle", {})
    wait_for_payment_status(app, sepa.id, "FAILED")

    assert_payloads_match(
        client,
        key,
        {
            "payment.initiated",
            "payment.attempt_failed",
            "payment.succeeded",
            "payment.pending",
            "payment.failed",
            "refund.failed",
            "refund.succeeded",
        },
    )


def test_dispute_events_match_their_schemas(
    app, client, make_merchant, paid_payment, stripe_delivers
):
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id, amount=5000).public_id
    opened = open_dispute(app, stripe_delivers, pay_id, reason="fraudulent")
    dispute = recorded_dispute(app, opened["id"])
    answered = client.post(
        f"/api/v1/disputes/{dispute.public_id}/evidence",
        json={"text": "Signed for."},
        headers=auth_headers(key),
    )
    assert answered.status_code == 200, answered.get_json()
    stripe_delivers.control("POST", f"disputes/{opened['id']}/close", {"outcome": "lost"})
    recorded_dispute(app, opened["id"], until=lambda d: d.closed_at is not None, what="closed")

    assert_payloads_match(client, key, {"dispute.created", "dispute.updated", "dispute.closed"})


def test_subscription_events_match_their_schemas(
    app, client, make_merchant, registered_payment, stripe_delivers
):
    merchant, key = make_merchant()
    first = registered_payment(
        merchant.id,
        merchant_reference=new_reference("plan"),
        amount=1500,
        payment_type="RECC",
        interval="day",
        interval_count=1,
    )
    pay_session(stripe_delivers, first.session_id)
    sub = wait_until(
        lambda: (
            (s := subscription_row(app, first.id))
            and s["status"] == "active"
            and s["current_period_end"] is not None
            and s
        ),
        what="subscription active",
        timeout=TIMEOUT,
    )
    stripe_delivers.control(
        "POST",
        f"subscriptions/{sub['psp_subscription_id']}/fail_next_renewal",
        {"decline_code": "insufficient_funds"},
    )
    bill_next_period(stripe_delivers, sub)
    wait_until(
        lambda: subscription_row(app, first.id)["status"] == "past_due",
        what="past_due",
        timeout=TIMEOUT,
    )
    [failed] = [
        d
        for d in stripe_delivers.control("GET", "deliveries")["data"]
        if d["event_type"] == "invoice.payment_failed"
    ]
    invoice = stripe_get(stripe_delivers, f"/v1/events/{failed['event_id']}")["data"]["object"]
    stripe_delivers.control("POST", f"invoices/{invoice['id']}/pay", {"outcome": "succeeded"})
    wait_until(
        lambda: subscription_row(app, first.id)["status"] == "active",
        what="active after the retry",
        timeout=TIMEOUT,
    )
    canceled = client.post(
        f"/api/v1/subscriptions/{sub['public_id']}/cancel",
        json={"at_period_end": False},
        headers=auth_headers(key),
    )
    assert canceled.status_code == 200, canceled.get_json()

    assert_payloads_match(
        client,
        key,
        {
            "subscription.created",
            "subscription.past_due",
            "subscription.renewed",
            "subscription.canceled",
        },
    )
