"""limit_malloc_arenas: the one call into glibc, unit-tested with a stand-in C library."""

from __future__ import annotations

import ctypes

from app import process_tuning


class _FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return 1


def test_caps_the_arenas_through_mallopt(monkeypatch):
    libc = _FakeLibc()
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setattr(ctypes, "CDLL", lambda name: libc)
    process_tuning.limit_malloc_arenas()
    assert libc.calls == [(-8, 2)]  # M_ARENA_MAX in glibc's <malloc.h>


def test_an_operators_malloc_arena_max_wins(monkeypatch):
    libc = _FakeLibc()
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.setattr(ctypes, "CDLL", lambda name: libc)
    process_tuning.limit_malloc_arenas()
    assert libc.calls == []


def test_without_mallopt_it_does_nothing(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setattr(ctypes, "CDLL", lambda name: object())  # no mallopt symbol
    process_tuning.limit_malloc_arenas()  # must not raise
