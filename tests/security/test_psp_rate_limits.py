"""Issue 25: one merchant's burst cannot take the PSP away from the others.

Stripe limits the whole PayBridge account. A PSP 429 is not a failure of the PSP, so it never
opens the circuit breaker all merchants share; and creates pass a cap for the account in Redis
of which one merchant may take only a share, so its burst gets 503 PSP_RATE_LIMITED (the payment
stays CREATED, its Idempotency-Key finishes it later, exactly once) while others go on."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Payment
from tests.support.api import auth_headers, create_body
from tests.support.psp import checkout_sessions
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("emu")


def create(client, key: str, reference: str):
    return client.post(
        "/api/v1/payments",
        json=create_body(merchant_reference=reference),
        headers=auth_headers(key, f"idem-{reference}"),
    )


def status_of(app, public_id: str) -> str:
    with app.app_context():
        status = db.session.scalar(select(Payment.status).where(Payment.public_id == public_id))
        db.session.remove()
        return status


def assert_retryable_503(response, code: str) -> str:
    """The answer is a 503 `code` with Retry-After, naming a payment that stayed CREATED."""
    assert response.status_code == 503, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["details"]["status"] == "CREATED"
    assert int(response.headers["Retry-After"]) >= 1
    return error["details"]["payment_id"]


def test_psp_429s_of_one_merchant_do_not_open_the_breaker_for_the_others(
    app, client, make_merchant, emu
):
    _, key_a = make_merchant("Shop A")
    _, key_b = make_merchant("Shop B")
    refusals = app.config["PSP_BREAKER_FAIL_MAX"] + 2
    emu.control(
        "POST",
        "faults",
        {"kind": "http_429", "path": "/v1/checkout/sessions", "method": "POST", "count": refusals},
    )

    refused = [create(client, key_a, f"a-{n}") for n in range(refusals)]

    ids = [assert_retryable_503(r, "PSP_RATE_LIMITED") for r in refused]
    assert all(status_of(app, public_id) == "CREATED" for public_id in ids)
    # Before: PSP_UNAVAILABLE, and after PSP_BREAKER_FAIL_MAX of them the breaker opened:
    # every merchant's create answered 503 "circuit open" for PSP_BREAKER_RESET_SECONDS.
    other = create(client, key_b, "b-1")
    assert other.status_code == 201, other.get_json()
    assert other.get_json()["status"] == "INITIATED"

    # A's payment is finished by a retry with its Idempotency-Key, registered exactly once.
    again = create(client, key_a, "a-0")
    assert again.status_code == 201, again.get_json()
    assert again.get_json()["id"] == ids[0] and again.get_json()["status"] == "INITIATED"
    assert len(checkout_sessions(emu, ids[0])) == 1


@pytest.fixture
def small_psp_cap(app):
    """The account's create cap at 10/s, one merchant's share 2/s, no queueing: a merchant's
    creates beyond its share are refused at once."""
    names = (
        "PSP_CREATE_RATE_PER_SECOND",
        "PSP_CREATE_MERCHANT_SHARE",
        "PSP_CREATE_MAX_QUEUE_SECONDS",
    )
    saved = {name: app.config[name] for name in names}
    app.config.update(
        PSP_CREATE_RATE_PER_SECOND=10.0,
        PSP_CREATE_MERCHANT_SHARE=0.2,
        PSP_CREATE_MAX_QUEUE_SECONDS=0.0,
    )
    yield
    app.config.update(saved)


def test_one_merchants_burst_gets_503_while_another_merchant_goes_on(
    app, client, make_merchant, emu, small_psp_cap
):
    _, key_a = make_merchant("Bursting shop")
    _, key_b = make_merchant("Calm shop")

    # A's burst: its share (2/s, a burst of 2) lets some through, then refuses.
    answers = []
    for n in range(60):
        answers.append(create(client, key_a, f"burst-{n}"))
        if answers[-1].status_code == 503:
            break
    statuses = [r.status_code for r in answers]
    assert statuses[-1] == 503 and set(statuses[:-1]) == {201}, statuses
    refused_id = assert_retryable_503(answers[-1], "PSP_RATE_LIMITED")
    assert status_of(app, refused_id) == "CREATED"
    assert checkout_sessions(emu, refused_id) == []

    # B still finds room in the account's cap at once.
    other = create(client, key_b, "calm-1")
    assert other.status_code == 201, other.get_json()

    # A's refused payment: retried with its Idempotency-Key once its share has room again,
    # registered exactly once.
    reference = f"burst-{len(answers) - 1}"
    retried = wait_until(
        lambda: (r := create(client, key_a, reference)).status_code == 201 and r,
        what="A's retry with the same Idempotency-Key to be registered",
        timeout=15,
        interval=0.2,
    )
    assert retried.get_json()["id"] == refused_id
    assert retried.get_json()["status"] == "INITIATED"
    assert status_of(app, refused_id) == "INITIATED"
    assert len(checkout_sessions(emu, refused_id)) == 1


def test_a_create_just_over_the_share_queues_briefly_instead_of_failing(
    app, client, make_merchant, emu, small_psp_cap
):
    """With a queue time, the creates past the merchant's burst wait for their slot (2/s here:
    about half a second each) and are registered, rather than refused."""
    app.config["PSP_CREATE_MAX_QUEUE_SECONDS"] = 5.0
    _, key = make_merchant("Steady shop")

    answers = [create(client, key, f"queued-{n}") for n in range(5)]

    assert [r.status_code for r in answers] == [201] * 5, [r.get_json() for r in answers]
    assert all(r.get_json()["status"] == "INITIATED" for r in answers)
