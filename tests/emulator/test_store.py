"""The emulator's object store: its due index (read by the clock's work instead of a scan) and the
copies it hands out."""

from __future__ import annotations

from stripe_emulator.store import Store, public


def _due_of(rec: dict) -> int | None:
    return rec["due"]


def test_due_records_come_newest_first_and_stay_due_until_saved_otherwise():
    store = Store()
    store.schedule("session", _due_of)
    for oid, due in (("a", 10), ("b", 20), ("c", 15), ("d", None)):
        store.save("session", {"id": oid, "due": due})
    assert store.due("session", 9) == []
    assert [r["id"] for r in store.due("session", 15)] == ["c", "a"]
    assert [r["id"] for r in store.due("session", 15)] == ["c", "a"]  # not handled: still due

    store.get("session", "a")["due"] = None  # handled
    store.save("session", store.get("session", "a"))
    store.get("session", "c")["due"] = 30  # put off
    store.save("session", store.get("session", "c"))
    assert [r["id"] for r in store.due("session", 25)] == ["b"]
    assert [r["id"] for r in store.due("session", 30)] == ["c", "b"]


def test_the_due_index_survives_a_restart_and_a_clear(tmp_path):
    path = str(tmp_path / "emu.db")
    store = Store(path)
    store.save("session", {"id": "a", "due": 10})
    store.save("session", {"id": "b", "due": 40})
    restarted = Store(path)
    restarted.schedule("session", _due_of)
    assert [r["id"] for r in restarted.due("session", 10)] == ["a"]

    restarted.clear(keep={"session": {"b"}})
    assert restarted.due("session", 10) == []
    assert [r["id"] for r in restarted.due("session", 40)] == ["b"]


def test_public_copies_are_deep_and_leave_out_private_fields():
    rec = {
        "id": "cs_1",
        "_private": {"secret": 1},
        "metadata": {"a": "b"},
        "line_items": [{"price": {"unit_amount": 100}, "tags": ["x"]}],
        "amount_total": 100,
        "livemode": False,
        "url": None,
        "custom": {"pair": (1, [2])},  # not JSON-shaped: copied by deepcopy
    }
    copy = public(rec)
    assert "_private" not in copy
    assert copy == {k: v for k, v in rec.items() if k != "_private"}

    copy["metadata"]["a"] = "changed"
    copy["line_items"][0]["price"]["unit_amount"] = 1
    copy["line_items"][0]["tags"].append("y")
    copy["custom"]["pair"][1].append(3)
    assert rec["metadata"] == {"a": "b"}
    assert rec["line_items"] == [{"price": {"unit_amount": 100}, "tags": ["x"]}]
    assert rec["custom"] == {"pair": (1, [2])}
