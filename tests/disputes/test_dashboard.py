"""The dashboard's disputes: the page (due soonest first), the banner on every page while one
needs a response, and answering one (evidence, or accepting it) with CSRF and a confirmation;
one merchant, one mode at a time."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from app.extensions import db
from app.models import AuditLog, Dispute, Payment, utcnow
from tests.disputes.support import open_dispute, recorded_dispute
from tests.support.pages import confirmed_post, csrf_from
from tests.support.rows import get_row, get_rows

BANNER = 'id="dispute-banner"'


def _disputed(app, emulator, merchant_id, paid_payment, **options) -> Dispute:
    pay_id = paid_payment(merchant_id, amount=4200).public_id
    return recorded_dispute(app, open_dispute(app, emulator, pay_id, **options)["id"])


def test_the_page_lists_what_is_due_soonest_first_and_the_banner_shows_on_every_page(
    app, tenants, client_a, client_b, paid_payment, stripe_delivers
):
    later = _disputed(app, stripe_delivers, tenants.a_id, paid_payment, respond_in_seconds=9000)
    sooner = _disputed(app, stripe_delivers, tenants.a_id, paid_payment, respond_in_seconds=3600)

    page = client_a.get("/dashboard/disputes").get_data(as_text=True)
    due_section = page.split("Every dispute")[0]
    assert due_section.index(sooner.public_id) < due_section.index(later.public_id)
    assert "42.00" in page and "Needs response" in page
    paid = get_row(app, Payment, id=sooner.payment_id)
    payment_page = client_a.get(f"/dashboard/payments/{paid.public_id}")
    assert f"/dashboard/disputes/{sooner.public_id}" in payment_page.get_data(as_text=True)
    # The transactions list marks them and filters by it; a payment never disputed is not there.
    undisputed = paid_payment(tenants.a_id, amount=100).public_id
    listed = client_a.get("/dashboard/payments").get_data(as_text=True)
    row = listed.split(paid.public_id)[0].rsplit('<tr class="tx-row">', 1)[1]
    assert 'badge-dispute-open">Disputed<' in row
    assert undisputed in listed and listed.count('badge-dispute-open">Disputed<') == 2
    only = client_a.get("/dashboard/payments?dispute_state=open").get_data(as_text=True)
    assert paid.public_id in only and undisputed not in only
    assert paid.public_id not in client_a.get("/dashboard/payments?dispute_state=lost").get_data(
        as_text=True
    )
    exported = client_a.get("/dashboard/payments/export.csv").get_data(as_text=True)
    states = {r["payment_id"]: r["dispute_state"] for r in csv.DictReader(io.StringIO(exported))}
    assert (states[paid.public_id], states[undisputed]) == ("open", "")
    for path in ("/dashboard/", "/dashboard/payments", "/dashboard/subscriptions"):
        html = client_a.get(path).get_data(as_text=True)
        assert BANNER in html and "2 disputes need your response." in html, path
    # Another merchant sees neither the banner nor the dispute.
    assert BANNER not in client_b.get("/dashboard/").get_data(as_text=True)
    assert sooner.public_id not in client_b.get("/dashboard/disputes").get_data(as_text=True)
    assert client_b.get(f"/dashboard/disputes/{sooner.public_id}").status_code == 404

    # Live data in view: the test disputes are not shown, nor their banner.
    token = csrf_from(client_a.get("/dashboard/").get_data(as_text=True))
    switch = {"mode": "live", "next": "/dashboard/", "csrf_token": token}
    assert client_a.post("/dashboard/mode", data=switch).status_code == 302
    live = client_a.get("/dashboard/disputes").get_data(as_text=True)
    assert BANNER not in live and sooner.public_id not in live


def test_evidence_is_reviewed_then_submitted_and_the_banner_goes(
    app, tenants, client_a, paid_payment, stripe_delivers
):
    dispute = _disputed(app, stripe_delivers, tenants.a_id, paid_payment)
    url = f"/dashboard/disputes/{dispute.public_id}"
    html = client_a.get(url).get_data(as_text=True)
    assert "Answer this dispute" in html
    text = "Shipped with tracking 1Z999, delivered & signed."

    review = client_a.post(
        f"{url}/evidence", data={"text": text, "csrf_token": csrf_from(html)}
    )  # step one: only shown back
    assert review.status_code == 200
    shown = review.get_data(as_text=True)
    assert "Yes, submit the evidence" in shown and "delivered &amp; signed" in shown
    assert get_row(app, Dispute, id=dispute.id).status == "needs_response"
    no_csrf = client_a.post(f"{url}/evidence", data={"text": text, "confirmed": "yes"})
    assert no_csrf.status_code == 400

    done = client_a.post(
        f"{url}/evidence",
        data={"text": text, "confirmed": "yes", "csrf_token": csrf_from(shown)},
    )

    assert done.status_code == 302
    stored = get_row(app, Dispute, id=dispute.id)
    assert (stored.status, stored.evidence_text) == ("under_review", text)
    after = client_a.get(url).get_data(as_text=True)
    assert "Evidence submitted for dispute" in after and "Answer this dispute" not in after
    assert BANNER not in after
    [audit] = get_rows(app, AuditLog, AuditLog.action == "dispute_evidence")
    assert audit.detail["result"] == "ok" and audit.target_id == dispute.public_id


def test_accepting_asks_first_then_loses_the_dispute_and_a_closed_one_takes_no_answer(
    app, tenants, client_a, paid_payment, stripe_delivers
):
    dispute = _disputed(app, stripe_delivers, tenants.a_id, paid_payment)
    url = f"/dashboard/disputes/{dispute.public_id}/accept"

    done = confirmed_post(client_a, url, button="Yes, accept the dispute")

    assert done.status_code == 302
    assert get_row(app, Dispute, id=dispute.id).status == "lost"
    again = client_a.get(url, follow_redirects=True).get_data(as_text=True)
    assert "This dispute is closed (lost)." in again
    detail = client_a.get(f"/dashboard/disputes/{dispute.public_id}").get_data(as_text=True)
    assert re.search(r"badge-lost\">Lost<", detail) and "Answer this dispute" not in detail


def test_a_past_due_dispute_is_not_counted_as_needing_a_response_but_shown_as_past_due(
    app, tenants, client_a, paid_payment, stripe_delivers
):
    open_one = _disputed(app, stripe_delivers, tenants.a_id, paid_payment)
    late = _disputed(app, stripe_delivers, tenants.a_id, paid_payment)
    with app.app_context():  # its due date passed without an answer
        db.session.get(Dispute, late.id).evidence_due_by = utcnow() - timedelta(hours=1)
        db.session.commit()

    overview = client_a.get("/dashboard/").get_data(as_text=True)
    assert BANNER in overview and "1 dispute needs your response." in overview
    page = client_a.get("/dashboard/disputes").get_data(as_text=True)
    due_section, rest = page.split("Past due: the bank decides without your answer")
    due_section = due_section.split("Needing your response")[1]
    assert open_one.public_id in due_section and late.public_id not in due_section
    past_due_section = rest.split("Every dispute")[0]
    assert late.public_id in past_due_section and "Past due" in past_due_section
    detail = client_a.get(f"/dashboard/disputes/{late.public_id}").get_data(as_text=True)
    assert "the bank decides without it now" in detail and "Answer this dispute" not in detail

    # Only the past-due one left waiting: no banner at all.
    with app.app_context():
        db.session.get(Dispute, open_one.id).status = "under_review"
        db.session.commit()
    assert BANNER not in client_a.get("/dashboard/").get_data(as_text=True)


def test_a_live_dispute_due_shows_in_the_banner_while_test_data_is_in_view(app, tenants, client_a):
    """Real money waits on a live dispute whatever mode is in view: the banner says "live"
    in test mode; a polite status, not an alert interrupting every page."""
    from tests.dashboard.test_modes import switch
    from tests.support.factories import add_payment

    with app.app_context():
        live = add_payment(tenants.a_id, livemode=True)
        db.session.add(
            Dispute(
                payment_id=live.id,
                merchant_id=tenants.a_id,
                livemode=True,
                psp_dispute_id="dp_live_banner",
                amount=1000,
                currency="EUR",
                status="needs_response",
                evidence_due_by=utcnow() + timedelta(days=3),
            )
        )
        db.session.commit()
    assert switch(client_a, "test").status_code == 302
    html = client_a.get("/dashboard/payments").get_data(as_text=True)
    banner = html.split(BANNER)[1].split("</div>\n</div>")[0]
    assert "1 live dispute needs your response." in banner
    assert 'id="dispute-banner" role="status"' in html and 'role="alert"' not in banner
    assert switch(client_a, "live").status_code == 302
    html = client_a.get("/dashboard/payments").get_data(as_text=True)
    assert "1 dispute needs your response." in html and "live dispute" not in html


def test_a_dispute_with_no_due_date_is_still_due_and_listed_last(app, tenants, client_a):
    """A needs_response dispute the PSP gave no due date: shown (banner, due list, last),
    not hidden as past due: an answer may still reach it."""
    from tests.dashboard.test_modes import switch
    from tests.support.factories import add_payment

    with app.app_context():
        paid = add_payment(tenants.a_id)
        for psp_id, due in (("dp_undated", None), ("dp_dated", utcnow() + timedelta(days=2))):
            db.session.add(
                Dispute(
                    payment_id=paid.id,
                    merchant_id=tenants.a_id,
                    livemode=False,
                    psp_dispute_id=psp_id,
                    amount=1000,
                    currency="EUR",
                    status="needs_response",
                    evidence_due_by=due,
                )
            )
        db.session.commit()
        undated = db.session.query(Dispute).filter_by(psp_dispute_id="dp_undated").one()
        dated = db.session.query(Dispute).filter_by(psp_dispute_id="dp_dated").one()
        assert undated.answerable(utcnow()) and not undated.past_due(utcnow())
    assert switch(client_a, "test").status_code == 302
    page = client_a.get("/dashboard/disputes").get_data(as_text=True)
    assert "2 disputes need your response." in page
    due_section = page.split("Needing your response")[1].split("Every dispute")[0]
    assert "Past due: the bank decides" not in due_section
    assert due_section.index(dated.public_id) < due_section.index(undated.public_id)


def test_evidence_the_psp_cannot_take_is_said_so_and_changes_nothing(
    app, tenants, client_a, paid_payment, stripe_delivers
):
    """Unreachable PSP, a refusal of the PSP's own, then a due date passed at the PSP: the
    dashboard says why, the dispute stays as it was, and the audit log records the error."""
    dispute = _disputed(app, stripe_delivers, tenants.a_id, paid_payment, respond_in_seconds=60)
    url = f"/dashboard/disputes/{dispute.public_id}/evidence"

    def submit(text: str) -> str:
        html = client_a.get(f"/dashboard/disputes/{dispute.public_id}").get_data(as_text=True)
        done = client_a.post(
            url, data={"text": text, "confirmed": "yes", "csrf_token": csrf_from(html)}
        )
        assert done.status_code == 302
        return client_a.get(done.headers["Location"]).get_data(as_text=True)

    stripe_delivers.control(
        "POST", "faults", {"kind": "http_500", "path": "/v1/disputes", "count": 10}
    )
    down = submit("Delivered, signed.")
    assert "The evidence was not submitted" in down and "cannot be reached" in down
    stripe_delivers.control("DELETE", "faults")
    assert get_row(app, Dispute, id=dispute.id).status == "needs_response"

    # The PSP refuses the acceptance outright (a 400 of its own): said so, nothing changes.
    stripe_delivers.control(
        "POST",
        "faults",
        {"kind": "http_400", "path": f"/v1/disputes/{dispute.psp_dispute_id}/close"},
    )
    page = client_a.get(f"/dashboard/disputes/{dispute.public_id}/accept").get_data(as_text=True)
    refused = client_a.post(
        f"/dashboard/disputes/{dispute.public_id}/accept", data={"csrf_token": csrf_from(page)}
    )
    assert refused.status_code == 302
    said = client_a.get(refused.headers["Location"]).get_data(as_text=True)
    assert "The dispute was not accepted" in said
    assert "refused the answer: This request was refused (injected fault)" in said  # its words
    stripe_delivers.control("DELETE", "faults")
    assert get_row(app, Dispute, id=dispute.id).status == "needs_response"

    stripe_delivers.control("POST", "clock/advance", {"seconds": 120})  # due at the PSP now
    late = submit("Delivered, signed.")
    assert "The evidence was not submitted" in late and "was due earlier" in late
    assert get_row(app, Dispute, id=dispute.id).status == "needs_response"
    audits = get_rows(app, AuditLog, AuditLog.action == "dispute_evidence")
    assert [a.detail["result"] for a in audits] == ["error", "error"]
    assert [a.detail["code"] for a in audits] == ["PSP_UNAVAILABLE", "DISPUTE_PAST_DUE"]
    [accept] = get_rows(app, AuditLog, AuditLog.action == "dispute_accept")
    assert (accept.detail["result"], accept.detail["code"]) == ("error", "PSP_REJECTED")
