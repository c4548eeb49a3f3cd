"""The emulator's object store: its due index, which the clock's work reads instead of a scan."""

from __future__ import annotations

from stripe_emulator.store import Store


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
