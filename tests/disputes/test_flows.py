"""Disputes end to end, against MariaDB, the emulator over HTTP and a client app's real
endpoint: the PSP opens one, PayBridge records and announces it, the merchant answers through
the API, the PSP decides it."""

from __future__ import annotations

import typing

from standardwebhooks import Webhook
from stripe.params._webhook_endpoint_create_params import WebhookEndpointCreateParams

from app.disputes.psp_events import DISPUTE_EVENT_TYPES
from app.models import Dispute, Notification, PspEvent
from app.psp import get_provider
from app.psp.stripe_adapter import event_from_stripe
from app.psp_events.intake import process_event
from tests.core.test_stripe_cli import endpoints
from tests.disputes.support import open_dispute, recorded_dispute
from tests.support.api import auth_headers
from tests.support.factories import FINAL_NEWS, make_api_key
from tests.support.rows import get_row, get_rows


def notified(receiver, merchant) -> list[dict]:
    return [Webhook(merchant.signing_secret).verify(r.body, r.headers) for r in receiver.requests]


def disputed_ids(client, key, state: str) -> list[str]:
    """The ids GET /api/v1/payments lists with dispute_state=`state`."""
    found = client.get(f"/api/v1/payments?dispute_state={state}", headers=auth_headers(key))
    assert found.status_code == 200, found.get_json()
    return [p["id"] for p in found.get_json()["data"]]


def test_a_dispute_is_recorded_answered_decided_and_its_client_told_each_step(
    app, client, make_merchant, paid_payment, stripe_delivers, receiver, worker
):
    merchant, key = make_merchant(notify_url=receiver.url)
    pay_id = paid_payment(merchant.id, amount=5000).public_id

    opened = open_dispute(app, stripe_delivers, pay_id, reason="product_not_received")

    dispute = recorded_dispute(app, opened["id"], until=lambda d: d.funds_withdrawn_at is not None)
    assert (dispute.amount, dispute.currency, dispute.reason) == (
        5000, "EUR", "product_not_received",
    )  # fmt: skip
    assert dispute.status == "needs_response" and dispute.livemode is False
    assert dispute.evidence_due_by is not None
    listed = client.get("/api/v1/disputes", headers=auth_headers(key)).get_json()
    assert [d["id"] for d in listed["data"]] == [dispute.public_id]
    assert listed["data"][0]["payment_id"] == pay_id and listed["data"][0]["needs_response"]
    other_pay_id = paid_payment(merchant.id, amount=700).public_id
    for payment, expected in ((pay_id, [dispute.public_id]), (other_pay_id, []), ("pay_x", [])):
        of_payment = client.get(f"/api/v1/disputes?payment_id={payment}", headers=auth_headers(key))
        assert [d["id"] for d in of_payment.get_json()["data"]] == expected, payment
    detail = client.get(f"/api/v1/payments/{pay_id}", headers=auth_headers(key)).get_json()
    assert [(d["id"], d["status"]) for d in detail["disputes"]] == [
        (dispute.public_id, "needs_response")
    ]
    assert detail["dispute_state"] == "open"
    assert disputed_ids(client, key, "open") == disputed_ids(client, key, "any") == [pay_id]
    assert disputed_ids(client, key, "won") == []

    text = "Delivered on 3 December, signed for by the cardholder."
    answered = client.post(
        f"/api/v1/disputes/{dispute.public_id}/evidence",
        json={"text": text},
        headers=auth_headers(key),
    )
    assert answered.status_code == 200, answered.get_json()
    body = answered.get_json()
    assert (body["status"], body["evidence_text"], body["submission_count"]) == (
        "under_review", text, 1,
    )  # fmt: skip
    # A retry of the same answer is harmless; other evidence once submitted is refused.
    again = client.post(
        f"/api/v1/disputes/{dispute.public_id}/evidence",
        json={"text": text},
        headers=auth_headers(key),
    )
    assert again.status_code == 200 and again.get_json()["submission_count"] == 1
    other = client.post(
        f"/api/v1/disputes/{dispute.public_id}/evidence",
        json={"text": "Something else"},
        headers=auth_headers(key),
    )
    assert other.status_code == 409
    assert other.get_json()["error"]["code"] == "DISPUTE_EVIDENCE_SUBMITTED"
    # Under review, accepting is refused too: the evidence given is the answer (nothing asked).
    early = client.post(f"/api/v1/disputes/{dispute.public_id}/close", headers=auth_headers(key))
    assert early.status_code == 409
    assert early.get_json()["error"]["code"] == "DISPUTE_EVIDENCE_SUBMITTED"
    still = client.get(f"/api/v1/disputes/{dispute.public_id}", headers=auth_headers(key))
    assert still.get_json()["status"] == "under_review"  # not closed at the PSP

    stripe_delivers.control("POST", f"disputes/{opened['id']}/close", {"outcome": "won"})
    closed = recorded_dispute(
        app, opened["id"], until=lambda d: d.funds_reinstated_at is not None, what="won"
    )
    assert closed.status == "won" and closed.closed_at is not None
    assert disputed_ids(client, key, "won") == [pay_id] and disputed_ids(client, key, "open") == []
    accept = client.post(f"/api/v1/disputes/{dispute.public_id}/close", headers=auth_headers(key))
    assert accept.status_code == 409 and accept.get_json()["error"]["code"] == "DISPUTE_CLOSED"

    worker.run_until(
        lambda: "dispute.closed" in [b["type"] for b in notified(receiver, merchant)],
        what="dispute.closed delivered",
    )
    worker.run_until(
        lambda: len(receiver.requests) == len(get_rows(app, Notification, FINAL_NEWS)),
        what="every notification delivered",
    )
    bodies = [b for b in notified(receiver, merchant) if b["type"].startswith("dispute.")]
    types = [b["type"] for b in bodies]
    assert types[0] == "dispute.created" and types.count("dispute.closed") == 1
    assert all(b["data"]["id"] == dispute.public_id for b in bodies)
    assert all(b["data"]["payment"]["id"] == pay_id for b in bodies)
    submitted = [b for b in bodies if b["data"]["status"] == "under_review"]
    assert submitted and submitted[0]["type"] == "dispute.updated"
    assert submitted[0]["data"]["evidence_text"] == text
    closed_body = next(b for b in bodies if b["type"] == "dispute.closed")
    assert closed_body["data"]["status"] == "won"
    # PayBridge's answer and the PSP's event of it made one notification, not two.
    assert len(submitted) == 1
    events = get_rows(app, PspEvent, PspEvent.event_type.like("charge.dispute.%"))
    assert {e.outcome for e in events} <= {"applied", "ignored"}
    assert len(events) == 5


def test_accepting_a_dispute_loses_it_once_and_evidence_is_refused_after(
    app, client, make_merchant, paid_payment, stripe_delivers, receiver, worker
):
    merchant, key = make_merchant(notify_url=receiver.url)
    pay_id = paid_payment(merchant.id, amount=2599).public_id
    opened = open_dispute(app, stripe_delivers, pay_id)
    dispute = recorded_dispute(app, opened["id"])

    first = client.post(f"/api/v1/disputes/{dispute.public_id}/close", headers=auth_headers(key))
    second = client.post(f"/api/v1/disputes/{dispute.public_id}/close", headers=auth_headers(key))

    assert first.status_code == 200 and first.get_json()["status"] == "lost"

    def answer(response) -> dict:  # the PSP's closed event may land in between and touch it
        return {k: v for k, v in response.get_json().items() if k != "updated_at"}

    assert second.status_code == 200 and answer(second) == answer(first)
    late = client.post(
        f"/api/v1/disputes/{dispute.public_id}/evidence",
        json={"text": "Too late"},
        headers=auth_headers(key),
    )
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "DISPUTE_CLOSED"
    recorded_dispute(
        app,
        opened["id"],
        until=lambda d: (
            len(get_rows(app, PspEvent, PspEvent.event_type == "charge.dispute.closed")) == 1
        ),
        what="the PSP's closed event stored",
    )
    worker.run_until(
        lambda: "dispute.closed" in [b["type"] for b in notified(receiver, merchant)],
        what="dispute.closed delivered",
    )
    types = [b["type"] for b in notified(receiver, merchant)]
    assert types.count("dispute.closed") == 1 and types.count("dispute.created") == 1


def test_the_networks_review_of_an_open_dispute_is_recorded_and_its_client_told(
    app, client, make_merchant, paid_payment, stripe_delivers, receiver, worker
):
    """The emulator's control route moves the open dispute to under review (the network's
    side, no evidence from the merchant): PayBridge records it from charge.dispute.updated and
    tells the merchant's endpoint with dispute.updated."""
    merchant, key = make_merchant(notify_url=receiver.url)
    pay_id = paid_payment(merchant.id, amount=3100).public_id
    opened = open_dispute(app, stripe_delivers, pay_id)
    dispute = recorded_dispute(app, opened["id"])
    assert dispute.status == "needs_response"

    moved = stripe_delivers.control(
        "POST", f"disputes/{opened['id']}/update", {"status": "under_review"}
    )["dispute"]
    assert moved["status"] == "under_review"

    reviewed = recorded_dispute(
        app, opened["id"], until=lambda d: d.status == "under_review", what="under review"
    )
    assert reviewed.public_id == dispute.public_id and reviewed.closed_at is None
    [updated] = get_rows(app, PspEvent, PspEvent.event_type == "charge.dispute.updated")
    assert updated.outcome == "applied"
    shown = client.get(f"/api/v1/disputes/{dispute.public_id}", headers=auth_headers(key))
    assert shown.get_json()["status"] == "under_review"

    def reviews() -> list[dict]:  # the review's, not any other dispute.updated
        return [
            b
            for b in notified(receiver, merchant)
            if b["type"] == "dispute.updated" and b["data"]["status"] == "under_review"
        ]

    worker.run_until(reviews, what="dispute.updated (under review) delivered")
    [told] = reviews()
    assert told["data"]["id"] == dispute.public_id


def test_evidence_after_its_due_date_is_refused_with_the_psps_reason(
    app, client, make_merchant, paid_payment, stripe_delivers
):
    merchant, key = make_merchant()
    pay_id = paid_payment(merchant.id).public_id
    opened = open_dispute(app, stripe_delivers, pay_id, respond_in_seconds=60)
    dispute = recorded_dispute(app, opened["id"])
    stripe_delivers.control("POST", "clock/advance", {"seconds": 120})  # the PSP's time passes

    late = client.post(
        f"/api/v1/disputes/{dispute.public_id}/evidence",
        json={"text": "Late"},
        headers=auth_headers(key),
    )

    assert late.status_code == 409 and late.get_json()["error"]["code"] == "DISPUTE_PAST_DUE"
    assert get_row(app, Dispute, public_id=dispute.public_id).status == "needs_response"
    empty = client.post(
        f"/api/v1/disputes/{dispute.public_id}/evidence", json={"text": " "},
        headers=auth_headers(key),
    )  # fmt: skip
    assert empty.status_code == 400


def test_a_key_sees_only_its_modes_disputes_and_an_event_of_the_other_mode_changes_nothing(
    app, client, make_merchant, paid_payment, stripe_delivers
):
    merchant, test_key = make_merchant()
    live_key = make_api_key(app, merchant.id, livemode=True)
    other_merchant, other_key = make_merchant("Other Shop")
    pay_id = paid_payment(merchant.id).public_id
    opened = open_dispute(app, stripe_delivers, pay_id)
    dispute = recorded_dispute(app, opened["id"])

    for key in (live_key, other_key):
        assert client.get("/api/v1/disputes", headers=auth_headers(key)).get_json()["data"] == []
        one = client.get(f"/api/v1/disputes/{dispute.public_id}", headers=auth_headers(key))
        assert one.status_code == 404 and one.get_json()["error"]["code"] == "DISPUTE_NOT_FOUND"
        url = f"/api/v1/disputes/{dispute.public_id}/close"
        assert client.post(url, headers=auth_headers(key)).status_code == 404
    seen = client.get(f"/api/v1/disputes/{dispute.public_id}", headers=auth_headers(test_key))
    assert seen.status_code == 200 and seen.get_json()["livemode"] is False

    # A live event naming the test payment's dispute: stored, never applied.
    with app.app_context():
        [psp_event] = [
            e
            for e in get_provider().list_events(["charge.dispute.created"], dispute.created_at)
            if e.dispute and e.dispute.id == opened["id"]
        ]
        forged = dict(psp_event.raw, id="evt_live_other_mode", livemode=True)
        forged["data"] = {"object": dict(psp_event.raw["data"]["object"], status="lost")}
        row = process_event(event_from_stripe(forged))
    assert row.outcome == "mode_mismatch"
    assert get_row(app, Dispute, public_id=dispute.public_id).status == "needs_response"


def test_list_pages_with_a_cursor_and_refuses_a_forged_one(
    app, client, make_merchant, paid_payment, stripe_delivers
):
    merchant, key = make_merchant()
    ids = []
    for _ in range(3):
        opened = open_dispute(app, stripe_delivers, paid_payment(merchant.id).public_id)
        ids.append(recorded_dispute(app, opened["id"]).public_id)

    first = client.get("/api/v1/disputes?limit=2", headers=auth_headers(key)).get_json()
    rest = client.get(
        f"/api/v1/disputes?limit=2&starting_after={first['next_cursor']}",
        headers=auth_headers(key),
    ).get_json()

    assert first["has_more"] and not rest["has_more"]
    assert [d["id"] for d in first["data"] + rest["data"]] == list(reversed(ids))
    bad = client.get("/api/v1/disputes?starting_after=nope", headers=auth_headers(key))
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "INVALID_CURSOR"
    typo = client.get("/api/v1/disputes?statuss=won", headers=auth_headers(key))
    assert typo.status_code == 400


def stripes_dispute_event_types() -> set[str]:
    """Every `charge.dispute.*` event type Stripe has: the webhook endpoint's `enabled_events`
    values in the SDK, generated from Stripe's OpenAPI spec (not from PayBridge's list)."""
    [listed] = typing.get_args(WebhookEndpointCreateParams.__annotations__["enabled_events"])
    return {kind for kind in typing.get_args(listed) if kind.startswith("charge.dispute.")}


def test_stripe_setup_subscribes_every_dispute_event(app, runner, emu):
    stripes = stripes_dispute_event_types()
    assert len(stripes) >= 5, stripes  # created, updated, closed, funds withdrawn, reinstated

    result = runner.invoke(args=["stripe", "setup", "--mode", "test"])

    assert result.exit_code == 0, result.output
    [endpoint] = endpoints(emu, livemode=False)
    assert stripes <= set(endpoint["enabled_events"]), stripes - set(endpoint["enabled_events"])
    assert stripes == set(DISPUTE_EVENT_TYPES)  # and each is handled, none is made up
