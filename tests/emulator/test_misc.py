"""Persistence, the form decoder, automatic expiry, metadata updates, latency and the CLI."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
import weakref

import pytest
import stripe

from stripe_emulator import forms
from stripe_emulator.__main__ import freeze_survivors
from stripe_emulator.api import latency_seconds
from stripe_emulator.testing import run_emulator

from .conftest import session_params


def sdk(emu) -> stripe.StripeClient:
    return stripe.StripeClient(emu.api_key, base_addresses={"api": emu.url}, max_network_retries=0)


def test_form_decoder_accepts_both_bracket_and_list_forms():
    assert forms.decode("a[b][c]=1&a%5Bb%5D%5Bd%5D=2") == {"a": {"b": {"c": "1", "d": "2"}}}
    assert forms.decode("x[]=a&x[]=b") == {"x": ["a", "b"]}
    assert forms.decode("x[1]=b&x[0]=a&e=") == {"x": ["a", "b"], "e": ""}
    assert forms.decode("li[0][q]=2&li[0][p][c]=usd&li[1][q]=1") == {
        "li": [{"q": "2", "p": {"c": "usd"}}, {"q": "1"}]
    }


def test_latency_sample_has_requested_mean():
    assert latency_seconds(0, 0) == 0
    samples = [latency_seconds(300, 800) for _ in range(4000)]
    mean_ms = sum(samples) / len(samples) * 1000
    assert 250 < mean_ms < 350
    assert sorted(samples)[int(len(samples) * 0.99)] * 1000 < 1200


def test_sessions_expire_on_their_own(emu, client, receiver):
    # A minute above Stripe's 30-minute minimum: the clock may tick before the creation.
    expires_at = emu.control("GET", "clock")["now"] + 30 * 60 + 60
    s = client.v1.checkout.sessions.create(params=session_params(expires_at=expires_at))
    # The clock to two seconds before expires_at, from wherever it has got to by now (so
    # that the advance itself, which expires what is due, is still short of it).
    now = emu.control("GET", "clock")["now"]
    emu.control("POST", "clock/advance", {"seconds": expires_at - now - 2})
    # No API call touches the session: the emulator's own timer must expire it.
    req = receiver.wait_for(
        lambda r: json.loads(r["body"])["type"] == "checkout.session.expired", timeout=10
    )[0]
    assert json.loads(req["body"])["data"]["object"]["id"] == s.id


def test_line_items_keep_their_order_and_metadata_updates(client):
    two = session_params()
    two["line_items"].append(
        {"price_data": {"currency": "usd", "unit_amount": 100, "product_data": {"name": "Tea"}},
         "quantity": 1}
    )  # fmt: skip
    s = client.v1.checkout.sessions.create(params=two)
    assert s.amount_total == 4098
    items = client.v1.checkout.sessions.line_items.list(s.id)
    assert [i.description for i in items.data] == ["Widget", "Tea"]
    updated = client.v1.checkout.sessions.update(s.id, {"metadata": {"a": "1"}})
    assert updated.metadata.to_dict() == {"a": "1"}


def _updatable(kind: str, client, emu):
    """A new object of ``kind`` and the SDK service that updates it."""
    sessions = client.v1.checkout.sessions
    if kind == "session":
        return sessions.create(params=session_params()), sessions
    plan = {
        "price_data": {"currency": "usd", "unit_amount": 900, "product_data": {"name": "Pro"},
                       "recurring": {"interval": "month"}},
        "quantity": 1,
    }  # fmt: skip
    mode = {"mode": "subscription", "line_items": [plan]} if kind == "subscription" else {}
    s = sessions.create(params=session_params(**mode))
    emu.control("POST", f"checkout/sessions/{s.id}/pay", {"card": "4242424242424242"})
    s = sessions.retrieve(s.id)
    if kind == "subscription":
        return client.v1.subscriptions.retrieve(s.subscription), client.v1.subscriptions
    return client.v1.refunds.create({"payment_intent": s.payment_intent}), client.v1.refunds


@pytest.mark.parametrize("kind", ["session", "refund", "subscription"])
def test_metadata_updates_set_unset_and_clear_keys(client, emu, kind):
    """Stripe's update rule, the same for each object: a value sets its key, an empty value
    removes it, an empty ``metadata`` clears them all, and anything but a hash is a 400."""
    obj, service = _updatable(kind, client, emu)
    assert service.update(obj.id, {"metadata": {"a": "1", "b": "2"}}).metadata.to_dict() == {
        "a": "1",
        "b": "2",
    }
    assert service.update(obj.id, {"metadata": {"a": "", "c": "3"}}).metadata.to_dict() == {
        "b": "2",
        "c": "3",
    }
    assert service.update(obj.id, {"metadata": ""}).metadata.to_dict() == {}
    with pytest.raises(stripe.InvalidRequestError) as exc:
        service.update(obj.id, {"metadata": "not-a-hash"})
    assert (exc.value.http_status, exc.value.param) == (400, "metadata")
    assert str(exc.value.user_message) == "Invalid object: metadata must be a hash."
    assert service.update(obj.id, {"metadata": {"d": "4"}}).metadata.to_dict() == {"d": "4"}


def test_latency_control_and_reset(emu, client):
    emu.control("POST", "latency", {"mean_ms": 150, "p99_ms": 150})
    started = time.monotonic()
    client.v1.checkout.sessions.list()
    assert time.monotonic() - started >= 0.14
    emu.control("POST", "latency", {"mean_ms": 0})


def test_db_keeps_sessions_events_and_idempotency_across_restart(tmp_path):
    db = str(tmp_path / "emulator.sqlite3")
    with run_emulator(db_path=db) as emu:
        client = sdk(emu)
        s = client.v1.checkout.sessions.create(
            params=session_params(), options={"idempotency_key": "persist-1"}
        )
        emu.control("POST", f"checkout/sessions/{s.id}/pay", {"card": "4242424242424242"})
    with run_emulator(db_path=db) as emu:
        client = sdk(emu)
        again = client.v1.checkout.sessions.retrieve(s.id, {"expand": ["payment_intent"]})
        assert (again.status, again.payment_intent.status) == ("complete", "succeeded")
        replay = client.v1.checkout.sessions.create(
            params=session_params(), options={"idempotency_key": "persist-1"}
        )
        assert replay.id == s.id
        assert {e.type for e in client.v1.events.list().data} == {
            "charge.succeeded",
            "checkout.session.completed",
            "payment_intent.succeeded",
        }
        newer = client.v1.checkout.sessions.create(params=session_params())
        assert [x.id for x in client.v1.checkout.sessions.list().data] == [newer.id, s.id]
        emu.control("POST", "reset")
    with run_emulator(db_path=db) as emu:
        assert sdk(emu).v1.checkout.sessions.list().data == []


@pytest.mark.parametrize("flag", ["--webhook-url", "--live-webhook-url"])
def test_cli_rejects_unpaired_webhook_flags(flag):
    proc = subprocess.run(
        [sys.executable, "-m", "stripe_emulator", flag, "http://x/"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and f"{flag} and" in proc.stderr and "pairs" in proc.stderr


def test_freeze_survivors_spares_young_cycles_and_takes_the_rest_from_full_collections():
    class Node:
        pass

    gc.unfreeze()
    records = [{"id": f"cs_{i}", "metadata": {"n": i}} for i in range(1000)]
    garbage = Node()
    garbage.self = garbage  # a cycle only the cyclic collector can free
    frozen_before = gc.get_freeze_count()
    dead = weakref.ref(garbage)
    del garbage
    try:
        freeze_survivors()
        assert dead() is None  # collected before the freeze, not pinned by it
        assert gc.get_freeze_count() >= frozen_before + len(records)
        tracked = {id(o) for o in gc.get_objects()}
        assert id(records[0]) not in tracked  # a full collection no longer walks it
    finally:
        gc.unfreeze()
