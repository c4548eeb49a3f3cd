"""Process settings: the one call into glibc (with a stand-in C library), template and
validation warm-up, database connections opened ahead."""

from __future__ import annotations

import ctypes

from app.runtime import process_tuning


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


def test_every_template_is_compiled_before_the_first_request(app):
    from pathlib import Path

    on_disk = list(Path(app.root_path, app.template_folder).rglob("*.html"))
    app.jinja_env.cache.clear()
    compiled = process_tuning.compile_templates(app)
    # The app's own templates, and those its extensions bring.
    assert compiled == len(app.jinja_env.list_templates(extensions=["html"])) >= len(on_disk) > 0
    assert len(app.jinja_env.cache) == compiled  # later renders find them compiled


def test_validation_and_the_psp_adapter_are_ready_before_the_first_request(app):
    from marshmallow.validate import URL

    URL._regex._memoized.clear()  # a fresh process: nothing compiled yet
    app.extensions.pop("paybridge_psp", None)
    process_tuning.warm_request_handling(app)  # the create schema accepts its sample body
    # What the first requests would otherwise each compile at once (the schema's Url fields).
    assert (False, True, False) in URL._regex._memoized
    # Built once, here: each configured mode's (the suite runs both).
    assert set(app.extensions["paybridge_psp"]) == {("stripe", False), ("stripe", True)}


def test_a_workers_database_connections_are_opened_before_its_first_request(app):
    from app.extensions import db

    with app.app_context():
        db.engine.dispose()  # a freshly forked worker: no connection yet
        assert db.engine.pool.checkedin() == 0
    opened = process_tuning.open_db_connections(app, 3)
    with app.app_context():
        assert (opened, db.engine.pool.checkedin()) == (3, 3)
        before = db.engine.pool.checkedin()
        db.session.execute(db.text("SELECT 1"))  # a request's transaction takes one of them
        assert db.engine.pool.checkedin() == before - 1
        db.session.remove()


def test_no_more_connections_than_the_pool_keeps(app):
    from app.extensions import db

    with app.app_context():
        db.engine.dispose()
        size = db.engine.pool.size()
    assert process_tuning.open_db_connections(app, size + 5) == size


def test_a_database_down_at_start_leaves_the_worker_starting(dead_db_app, caplog):
    assert process_tuning.open_db_connections(dead_db_app, 2) == 0
    assert "database connections not opened ahead" in caplog.text
