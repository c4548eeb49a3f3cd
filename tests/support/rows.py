"""Reading the database from a test: each call in a fresh app context (so it sees every commit
so far), its rows detached with their columns loaded, readable after the context is gone."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from app.extensions import db

T = TypeVar("T")
M = TypeVar("M")


def read(app, fn: Callable[[], T]) -> T:
    """Run `fn()` in a fresh app context and return what it returns."""
    with app.app_context():
        try:
            return fn()
        finally:
            db.session.remove()


def get_row(app, model: type[M], ident=None, /, *, load: Sequence[str] = (), **by) -> M:
    """The one `model` row with primary key `ident`, or with the column values `by`
    (`get_row(app, Payment, public_id=...)`); the relationships named in `load` loaded too."""

    def fetch():
        if ident is not None:
            found = db.session.get(model, ident)
            assert found is not None, f"no {model.__name__} {ident}"
        else:
            found = db.session.execute(db.select(model).filter_by(**by)).scalar_one()
        for name in load:
            getattr(found, name)
        db.session.expunge_all()
        return found

    return read(app, fetch)


def get_rows(app, model: type[M], *criteria, order_by=None, **by) -> list[M]:
    """Every `model` row matching `criteria` and the column values `by`, in `order_by` order
    (the primary key's by default)."""

    def fetch():
        query = db.select(model).where(*criteria).filter_by(**by)
        found = db.session.scalars(query.order_by(*_order(model, order_by))).all()
        db.session.expunge_all()
        return list(found)

    return read(app, fetch)


def count_rows(app, model, *criteria, **by) -> int:
    """How many `model` rows match `criteria` and the column values `by`."""
    query = db.select(db.func.count()).select_from(model).where(*criteria).filter_by(**by)
    return read(app, lambda: db.session.scalar(query))


def _order(model, order_by) -> tuple:
    if order_by is None:
        return tuple(model.__table__.primary_key.columns)
    return tuple(order_by) if isinstance(order_by, (list, tuple)) else (order_by,)
