"""The merchant's evidence reached the PSP but the PSP's answer never reached PayBridge (a
timeout, a dropped connection): the same evidence again answers the dispute as the PSP has it,
whether the PSP's own event of the submission arrived before the retry or not. Against MariaDB
and the emulator over HTTP (its `lose_response` fault: the work is done, the reply lost)."""

from __future__ import annotations

from app.extensions import db
from app.models import Dispute
from app.psp import get_provider
from app.psp.stripe_adapter import StripeProvider
from tests.disputes.support import dispute_applied, open_dispute, recorded_dispute
from tests.support.api import auth_headers
from tests.support.rows import get_row

TEXT = "Delivered on 3 December to the cardholder's address, signed for."


def evidence(client, key: str, dispute_id: str, text: str = TEXT):
    return client.post(
        f"/api/v1/disputes/{dispute_id}/evidence", json={"text": text}, headers=auth_headers(key)
    )


def lose_the_next_answer(emu, psp_dispute_id: str) -> None:
    fault = {"kind": "lose_response", "count": 1, "path": f"/v1/disputes/{psp_dispute_id}"}
    emu.control("POST", "faults", fault)


def at_the_psp(app, psp_dispute_id: str):
    with app.app_context():
        return get_provider().retrieve_dispute(psp_dispute_id)


def test_a_retry_after_a_lost_answer_succeeds_before_the_psps_event_arrives(
    app, client, make_merchant, paid_payment, emu
):
    merchant, key = make_merchant()
    dispute_id = dispute_applied(app, emu, paid_payment(merchant.id).public_id)
    psp_id = get_row(app, Dispute, public_id=dispute_id).psp_dispute_id
    lose_the_next_answer(emu, psp_id)

    lost = evidence(client, key, dispute_id)

    assert lost.status_code == 503, lost.get_json()
    assert at_the_psp(app, psp_id).status == "under_review"  # the evidence did arrive
    retried = evidence(client, key, dispute_id)
    assert retried.status_code == 200, retried.get_json()
    body = retried.get_json()
    assert (body["status"], body["evidence_text"], body["submission_count"]) == (
        "under_review", TEXT, 1,
    )  # fmt: skip
    assert at_the_psp(app, psp_id).submission_count == 1
    # Other evidence is still refused once submitted.
    other = evidence(client, key, dispute_id, "Something else")
    assert other.status_code == 409
    assert other.get_json()["error"]["code"] == "DISPUTE_EVIDENCE_SUBMITTED"


def test_a_retry_after_a_lost_answer_succeeds_once_the_psps_event_recorded_the_submission(
    app, client, make_merchant, paid_payment, stripe_delivers
):
    merchant, key = make_merchant()
    opened = open_dispute(app, stripe_delivers, paid_payment(merchant.id).public_id)
    dispute = recorded_dispute(app, opened["id"])
    lose_the_next_answer(stripe_delivers, opened["id"])

    assert evidence(client, key, dispute.public_id).status_code == 503
    # The PSP's charge.dispute.updated tells PayBridge of the submission, with its text.
    recorded = recorded_dispute(
        app, opened["id"], until=lambda d: d.status == "under_review", what="the PSP's event"
    )
    assert recorded.evidence_text == TEXT

    retried = evidence(client, key, dispute.public_id)

    assert retried.status_code == 200, retried.get_json()
    assert (retried.get_json()["status"], retried.get_json()["submission_count"]) == (
        "under_review", 1,
    )  # fmt: skip


def test_no_transaction_is_open_while_the_psp_is_asked(
    app, client, make_merchant, paid_payment, emu, monkeypatch
):
    """Not even a read: a transaction open across a slow PSP call holds its snapshot (and any
    lock taken in it) for as long as the PSP takes."""
    merchant, key = make_merchant()
    dispute_id = dispute_applied(app, emu, paid_payment(merchant.id).public_id)
    to_accept = dispute_applied(app, emu, paid_payment(merchant.id).public_id)
    open_at_call = []
    for name in ("update_dispute", "close_dispute", "retrieve_dispute"):
        real = getattr(StripeProvider, name)

        def spy(self, *args, _real=real, **kwargs):
            open_at_call.append(db.session().in_transaction())
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(StripeProvider, name, spy)
    lose_the_next_answer(emu, get_row(app, Dispute, public_id=dispute_id).psp_dispute_id)

    assert evidence(client, key, dispute_id).status_code == 503
    assert evidence(client, key, dispute_id).status_code == 200  # refused, then retrieved
    accepted = client.post(f"/api/v1/disputes/{to_accept}/close", headers=auth_headers(key))

    assert accepted.status_code == 200 and accepted.get_json()["status"] == "lost"
    assert len(open_at_call) >= 4 and not any(open_at_call), open_at_call
