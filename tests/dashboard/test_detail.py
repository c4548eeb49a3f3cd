"""The payment detail page tells the whole story: amounts, history, events, notifications."""

from __future__ import annotations

import html as htmllib

from app.extensions import db
from app.models import PaymentConflict, PspEvent
from tests.support.factories import add_notification, add_payment


def test_detail_shows_amounts_timeline_events_notifications_and_conflicts(app, client_a, tenants):
    with app.app_context():
        p = add_payment(
            tenants.a_id,
            reference="order-77",
            status="SUCCESS",
            amount=123456,
            currency="EUR",
            email="carla@example.com",
            session_id="cs_test_detail",
        )
        add_notification(p, status="delivered", attempts=[503, 200])
        db.session.add(
            PspEvent(
                event_id="evt_detail_1",
                event_type="checkout.session.completed",
                payment_id=p.id,
                psp_session_id="cs_test_detail",
                payload={"id": "evt_detail_1", "data": {"object": {"amount_total": 123456}}},
                outcome=PspEvent.OUTCOME_APPLIED,
            )
        )
        db.session.add(
            PaymentConflict(
                payment_id=p.id,
                merchant_id=tenants.a_id,
                kind=PaymentConflict.KIND_PAID_AFTER_FAILED,
                detail="Paid at the PSP after PayBridge failed it",
            )
        )
        db.session.commit()
        public_id = p.public_id
    response = client_a.get(f"/dashboard/payments/{public_id}")
    assert response.status_code == 200
    page = htmllib.unescape(response.get_data(as_text=True))
    assert "1234.56 EUR" in page
    assert "order-77" in page and "carla@example.com" in page
    # timeline: CREATED → INITIATED → SUCCESS with sources
    assert page.count('class="badge badge-INITIATED"') >= 2
    assert "source: <strong>webhook</strong>" in page
    assert "moved to SUCCESS" in page
    # raw PSP event, pretty printed
    assert "evt_detail_1" in page
    assert '"amount_total": 123456' in page
    # notification with every attempt
    assert "payment.succeeded" in page
    assert "badge-delivered" in page
    assert ">503<" in page and ">200<" in page
    # conflict warning
    assert "Conflict: the PSP reports something PayBridge could not apply" in page
    assert "Not resolved." in page
    # link to the PSP object (the emulator's page for its session)
    assert "/c/pay/cs_test_detail" in page


def test_final_payment_offers_no_expire(app, client_a, tenants):
    with app.app_context():
        p = add_payment(tenants.a_id, status="FAILED")
        db.session.commit()
        public_id = p.public_id
    page = client_a.get(f"/dashboard/payments/{public_id}").get_data(as_text=True)
    assert "Expire payment" not in page
    confirm = client_a.get(f"/dashboard/payments/{public_id}/expire")
    assert confirm.status_code == 302  # back to the detail with a message


def test_unknown_payment_is_a_human_404(client_a):
    response = client_a.get("/dashboard/payments/pay_doesnotexist")
    assert response.status_code == 404
    assert "find that page" in htmllib.unescape(response.get_data(as_text=True))


def test_detail_lists_refunds(app, client_a, tenants):
    from app.models import Refund

    with app.app_context():
        p = add_payment(tenants.a_id, status="SUCCESS", amount=5000, currency="EUR")
        p.refunded_amount = 1500
        db.session.add(
            Refund(
                payment_id=p.id,
                merchant_id=tenants.a_id,
                amount=1500,
                currency="EUR",
                status="succeeded",
                reason="requested_by_customer",
            )
        )
        db.session.commit()
        public_id = p.public_id
    page = htmllib.unescape(client_a.get(f"/dashboard/payments/{public_id}").get_data(as_text=True))
    assert "Refunded</dt><dd>15.00 EUR" in page
    assert "<code>re_" in page
    assert "badge-succeeded" in page and "requested_by_customer" in page
