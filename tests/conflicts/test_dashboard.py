"""The dashboard's conflict actions: confirm, CSRF, tenancy, the PSP refund, the audit row."""

from __future__ import annotations

import html as htmllib

from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Payment, PaymentConflict, Refund
from tests.conflicts.conftest import psp_refunds
from tests.support.pages import csrf_from
from tests.support.rows import get_row, get_rows


def page(client, url: str) -> str:
    return htmllib.unescape(client.get(url).get_data(as_text=True))


def test_refund_from_the_dashboard_confirms_refunds_once_and_audits(
    app, client_a, tenants, paid_after_failed
):
    c = paid_after_failed(tenants.a_id, amount=4250)
    detail_url = f"/dashboard/payments/{c.public_id}"
    url = f"{detail_url}/conflicts/{c.conflict_id}/refund"

    detail = page(client_a, detail_url)
    assert "Not resolved." in detail
    assert url in detail and "Refund the customer at the PSP…" in detail
    assert f"{detail_url}/conflicts/{c.conflict_id}/resolve" in detail

    confirm = client_a.get(url)
    assert confirm.status_code == 200
    confirm_html = confirm.get_data(as_text=True)
    assert "Yes, refund the customer" in confirm_html and c.session_id in confirm_html
    token = csrf_from(confirm_html)

    # Without the CSRF token: refused, nothing asked of the PSP.
    assert client_a.post(url, data={}).status_code == 400
    assert psp_refunds(app, c.payment_intent_id) == []
    assert get_row(app, PaymentConflict, c.conflict_id).resolution is None

    done = client_a.post(url, data={"csrf_token": token})
    assert done.status_code == 302 and done.headers["Location"].endswith(detail_url)
    [psp_refund] = psp_refunds(app, c.payment_intent_id)
    assert (psp_refund.amount, psp_refund.status) == (4250, "succeeded")
    result = page(client_a, done.headers["Location"])
    assert f"Conflict resolved — refunded at the PSP: {psp_refund.id} (succeeded)" in result
    assert "Refund the customer at the PSP…" not in result  # resolved: no more actions
    row = get_row(app, PaymentConflict, c.conflict_id)
    assert row.resolved_at is not None and tenants.a_email in row.resolution
    payment = get_row(app, Payment, c.payment_id)
    assert payment.status == "FAILED" and not payment.refunded_amount
    with app.app_context():
        assert db.session.scalars(select(Refund)).all() == []

    [entry] = get_rows(app, AuditLog, action="conflict_refund")
    assert (entry.merchant_id, entry.target_type, entry.target_id) == (
        tenants.a_id,
        "payment",
        c.public_id,
    )
    assert entry.detail["result"] == "ok" and entry.detail["conflict_id"] == c.conflict_id
    assert psp_refund.id in entry.detail["resolution"]

    # The same confirmation sent again (double click, reload): no second refund.
    again = client_a.post(url, data={"csrf_token": token})
    assert again.status_code == 302
    assert "This conflict is already resolved" in page(client_a, again.headers["Location"])
    assert len(psp_refunds(app, c.payment_intent_id)) == 1


def test_psp_refusal_is_flashed_and_audited(app, client_a, tenants, paid_after_failed, emu):
    c = paid_after_failed(tenants.a_id)
    url = f"/dashboard/payments/{c.public_id}/conflicts/{c.conflict_id}/refund"
    token = csrf_from(client_a.get(url).get_data(as_text=True))
    emu.control("POST", "faults", {"kind": "http_500", "path": "/v1/refunds", "count": 1})

    done = client_a.post(url, data={"csrf_token": token})
    assert done.status_code == 302
    shown = page(client_a, done.headers["Location"])
    assert "The customer was not refunded: The PSP could not be reached" in shown
    assert "Last attempt: not refunded yet" in shown
    assert get_row(app, PaymentConflict, c.conflict_id).resolved_at is None
    assert psp_refunds(app, c.payment_intent_id) == []
    [entry] = get_rows(app, AuditLog, action="conflict_refund")
    assert entry.detail == {
        "conflict_id": c.conflict_id,
        "result": "error",
        "code": "PSP_UNAVAILABLE",
    }


def test_another_merchant_gets_404_and_an_operator_may_act(
    app, client_a, client_b, client_op, tenants, paid_after_failed
):
    c = paid_after_failed(tenants.a_id)
    base = f"/dashboard/payments/{c.public_id}/conflicts/{c.conflict_id}"
    token_b = csrf_from(client_b.get("/dashboard/api-keys").get_data(as_text=True))
    for action in ("refund", "resolve"):
        assert client_b.get(f"{base}/{action}").status_code == 404
        refused = client_b.post(f"{base}/{action}", data={"csrf_token": token_b, "note": "mine"})
        assert refused.status_code == 404
    assert psp_refunds(app, c.payment_intent_id) == []
    assert get_row(app, PaymentConflict, c.conflict_id).resolved_at is None
    assert (
        get_rows(app, AuditLog, action="conflict_refund")
        == get_rows(app, AuditLog, action="conflict_resolve")
        == []
    )

    # A conflict id that belongs to another payment is not reachable through this one.
    other = paid_after_failed(tenants.a_id)
    wrong = f"/dashboard/payments/{c.public_id}/conflicts/{other.conflict_id}/refund"
    assert client_a.get(wrong).status_code == 404

    # The operator (every merchant) refunds it.
    token_op = csrf_from(client_op.get(f"{base}/refund").get_data(as_text=True))
    assert client_op.post(f"{base}/refund", data={"csrf_token": token_op}).status_code == 302
    assert len(psp_refunds(app, c.payment_intent_id)) == 1
    assert tenants.op_email in get_row(app, PaymentConflict, c.conflict_id).resolution


def test_mark_resolved_needs_a_note_and_a_confirmation(app, client_a, tenants, paid_after_failed):
    c = paid_after_failed(tenants.a_id)
    url = f"/dashboard/payments/{c.public_id}/conflicts/{c.conflict_id}/resolve"
    confirm = client_a.get(url)
    assert confirm.status_code == 200
    assert "Yes, mark resolved" in confirm.get_data(as_text=True)
    token = csrf_from(confirm.get_data(as_text=True))

    assert client_a.post(url, data={"note": "no token"}).status_code == 400
    empty = client_a.post(url, data={"csrf_token": token, "note": ""})
    assert empty.status_code == 400 and "This field is required." in empty.get_data(as_text=True)
    assert get_row(app, PaymentConflict, c.conflict_id).resolved_at is None

    note = "Customer paid twice; refunded by bank transfer"
    done = client_a.post(url, data={"csrf_token": token, "note": note})
    assert done.status_code == 302
    shown = page(client_a, done.headers["Location"])
    assert f"Conflict marked resolved — resolved by {tenants.a_email}" in shown
    row = get_row(app, PaymentConflict, c.conflict_id)
    assert row.resolved_at is not None and row.resolution.endswith(note)
    [entry] = get_rows(app, AuditLog, action="conflict_resolve")
    assert entry.detail["note"] == note and entry.detail["result"] == "ok"
    assert entry.merchant_id == tenants.a_id
    # Resolved by hand: the refund action is gone, and nothing was refunded at the PSP.
    assert (
        client_a.post(
            f"/dashboard/payments/{c.public_id}/conflicts/{c.conflict_id}/refund",
            data={"csrf_token": token},
        ).status_code
        == 302
    )
    assert psp_refunds(app, c.payment_intent_id) == []
