"""The dashboard's refund: a form, a confirmation step, the result, the audit row, the timeline."""

from __future__ import annotations

import re

from app.extensions import db
from app.models import AuditLog, Payment, Refund
from tests.support.pages import csrf_from, token_for
from tests.support.rows import get_row, get_rows


def _hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html)
    if match is None:
        match = re.search(rf'value="([^"]*)"[^>]*name="{name}"', html)
    assert match, f"no {name} on the page"
    return match.group(1)


def _refunds(app, pay_id: str) -> list[Refund]:
    return get_rows(app, Refund, Refund.payment.has(public_id=pay_id))


def test_partial_refund_from_the_dashboard_asks_confirms_and_shows_the_result(
    app, tenants, client_a, paid_payment
):
    pay_id = paid_payment(tenants.a_id, amount=5000).public_id
    client = client_a

    detail = client.get(f"/dashboard/payments/{pay_id}").get_data(as_text=True)
    assert f"/dashboard/payments/{pay_id}/refund" in detail  # the Refund… button

    form = client.get(f"/dashboard/payments/{pay_id}/refund")
    assert form.status_code == 200
    html = form.get_data(as_text=True)
    assert 'value="50.00"' in html  # everything that remains, by default
    csrf, token = csrf_from(html), _hidden(html, "token")

    # Step one: the amount asked for is only reviewed; nothing is refunded yet.
    review = client.post(
        f"/dashboard/payments/{pay_id}/refund",
        data={"csrf_token": csrf, "amount": "12,50", "reason": "duplicate", "token": token},
    )
    assert review.status_code == 200
    page = review.get_data(as_text=True)
    assert "Refund 12.50 EUR of payment" in page and "partial refund" in page
    assert _refunds(app, pay_id) == []

    # Step two: confirmed → refunded at the PSP, result shown on the payment page.
    confirm = {
        "csrf_token": csrf_from(page),
        "amount": _hidden(page, "amount"),
        "reason": _hidden(page, "reason"),
        "token": _hidden(page, "token"),
        "confirmed": "yes",
    }
    done = client.post(f"/dashboard/payments/{pay_id}/refund", data=confirm)
    assert done.status_code == 302
    result = client.get(done.headers["Location"]).get_data(as_text=True)
    [refund] = _refunds(app, pay_id)
    assert (refund.amount, refund.status, refund.reason) == (1250, "succeeded", "duplicate")
    assert refund.source == "dashboard" and refund.psp_refund_id
    assert f"Refund {refund.public_id} of 12.50 EUR succeeded." in result
    assert "Refunded" in result and "12.50 EUR" in result
    assert f"Refund {refund.public_id} of 12.50 EUR requested (dashboard)" in result  # timeline
    assert get_row(app, Payment, public_id=pay_id).refunded_amount == 1250

    # Submitting the same confirmation again (double click, reload) makes no second refund.
    again = client.post(f"/dashboard/payments/{pay_id}/refund", data=confirm)
    assert again.status_code == 302
    assert len(_refunds(app, pay_id)) == 1

    with app.app_context():
        rows = db.session.scalars(
            db.select(AuditLog).where(AuditLog.action == "payment_refund")
        ).all()
        assert len(rows) == 2 and rows[0].target_id == pay_id
        assert rows[0].detail["refund"] == refund.public_id
        assert rows[0].detail["amount"] == 1250 and rows[0].detail["status"] == "succeeded"


def test_dashboard_refund_refuses_bad_amounts_and_a_missing_csrf_token(
    app, tenants, client_a, paid_payment
):
    pay_id = paid_payment(tenants.a_id, amount=5000).public_id
    client = client_a
    html = client.get(f"/dashboard/payments/{pay_id}/refund").get_data(as_text=True)
    csrf, token = csrf_from(html), _hidden(html, "token")

    for amount, message in [
        ("50.01", "At most 50.00 EUR remains"),
        ("0", "greater than zero"),
        ("1.234", "2 decimal places at most"),
        ("abc", "Enter an amount like 12.50."),
    ]:
        r = client.post(
            f"/dashboard/payments/{pay_id}/refund",
            data={
                "csrf_token": csrf,
                "amount": amount,
                "reason": "duplicate",
                "token": token,
                "confirmed": "yes",
            },
        )
        assert r.status_code == 400, amount
        assert message in r.get_data(as_text=True), amount

    no_csrf = client.post(
        f"/dashboard/payments/{pay_id}/refund",
        data={"amount": "10", "reason": "duplicate", "token": token, "confirmed": "yes"},
    )
    assert no_csrf.status_code == 400
    assert _refunds(app, pay_id) == []


def test_full_refund_from_the_dashboard_then_no_refund_button(app, tenants, client_a, paid_payment):
    pay_id = paid_payment(tenants.a_id, amount=3000).public_id
    client = client_a
    html = client.get(f"/dashboard/payments/{pay_id}/refund").get_data(as_text=True)
    review = client.post(
        f"/dashboard/payments/{pay_id}/refund",
        data={
            "csrf_token": csrf_from(html),
            "amount": _hidden(html, "amount"),
            "reason": "requested_by_customer",
            "token": _hidden(html, "token"),
        },
    ).get_data(as_text=True)
    assert "everything that remains" in review
    done = client.post(
        f"/dashboard/payments/{pay_id}/refund",
        data={
            "csrf_token": csrf_from(review),
            "amount": _hidden(review, "amount"),
            "reason": _hidden(review, "reason"),
            "token": _hidden(review, "token"),
            "confirmed": "yes",
        },
    )
    assert done.status_code == 302
    assert get_row(app, Payment, public_id=pay_id).refunded_amount == 3000
    detail = client.get(f"/dashboard/payments/{pay_id}").get_data(as_text=True)
    assert f"/dashboard/payments/{pay_id}/refund" not in detail
    # Asking for the form anyway sends the user back with the reason.
    back = client.get(f"/dashboard/payments/{pay_id}/refund", follow_redirects=True)
    assert "nothing remains to refund" in back.get_data(as_text=True)


def test_another_merchants_payment_cannot_be_refunded(app, tenants, client_b, paid_payment):
    pay_id = paid_payment(tenants.a_id).public_id
    client = client_b
    assert client.get(f"/dashboard/payments/{pay_id}/refund").status_code == 404
    csrf = token_for(client, "/dashboard/")
    forged = {"csrf_token": csrf, "amount": "1", "token": "x" * 20, "confirmed": "yes"}
    assert client.post(f"/dashboard/payments/{pay_id}/refund", data=forged).status_code == 404
    assert _refunds(app, pay_id) == []
