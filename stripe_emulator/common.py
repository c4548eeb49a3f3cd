"""What the Emulator (emulator.py) and its mixins (refunds.py, subscriptions.py) share: who
caused a change, parameter parsing, and Stripe's list pagination.

It imports none of them, so each can import it at the top: the mixins used to import these
helpers back from emulator.py inside their methods, an import cycle.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from . import validation
from .errors import in_other_mode, invalid, no_such, unknown
from .store import Store


@dataclass
class Ctx:
    """Who caused a change: an API request (id + idempotency key) or nobody (customer/timer)."""

    request_id: str | None = None
    idempotency_key: str | None = None
    stripe_version: str | None = None
    hang: float = 0.0
    livemode: bool = False  # the API key's mode: what a create makes


NO_REQUEST = Ctx()

# The mode of the /v1 request being served (True: a live key), as Stripe keeps test and live
# data apart: every lookup by id (``fetch``/``visible``) and every list (``paginate``) reads it,
# so no route can forget it. Unset (None) outside a /v1 request: the control routes, the hosted
# page and the clock act on both modes' objects.
request_livemode: ContextVar[bool | None] = ContextVar("request_livemode", default=None)


def mode_of(rec: dict) -> bool | None:
    """A stored object's mode: its ``livemode``, or the private one of an object Stripe shows
    none on (a refund); None for a part of another object (a line item), which is its parent's."""
    return rec.get("livemode", rec.get("_livemode"))


def visible(rec: dict, kind: str, oid: str, param: str = "id", status: int = 404) -> dict:
    """``rec`` if the request's key may see it; else Stripe's 404 naming the other mode."""
    mode = request_livemode.get()
    if mode is None or mode_of(rec) in (None, mode):
        return rec
    raise in_other_mode(kind, oid, exists_in_live=not mode, param=param, status=status)


# What every list accepts: a page (limit and cursors) and ``expand``; LIST_PARAMS adds ``created``.
PAGE_PARAMS = {"limit", "starting_after", "ending_before", "expand"}
LIST_PARAMS = PAGE_PARAMS | {"created"}


def fetch(store: Store, kind: str, oid: str, param: str = "id") -> dict:
    """The stored ``kind`` record ``oid``, else Stripe's 404 ``resource_missing`` on ``param``."""
    rec = store.get(kind, oid)
    if rec is None:
        raise no_such(kind, oid, param=param)
    return visible(rec, kind, oid, param)


# -- parameters --------------------------------------------------------------------------
def integer(value, param: str, *, minimum: int | None = None) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = None
    if n is None or abs(n) > validation.MAX_INT64:  # Stripe's integers are 64-bit
        raise invalid(param, f"Invalid integer: {value}", "parameter_invalid_integer") from None
    if minimum is not None and n < minimum:
        raise invalid(param, f"This value must be greater than or equal to {minimum}.")
    return n


def blank_to_none(params: dict) -> dict:
    # Stripe treats an empty top-level string as "unset".
    return {k: v for k, v in params.items() if v != ""}


def as_list(value, param: str) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [value]
    raise invalid(param, f"Invalid array: {param}")


def check_params(params: dict, allowed: set[str]) -> None:
    """Stripe's 400 ``parameter_unknown`` for the first parameter not in ``allowed``."""
    for key in params:
        if key not in allowed:
            raise unknown(key)


def new_metadata(value) -> dict:
    """A new object's ``metadata`` parameter: a hash, its empty values left out."""
    metadata = value or {}
    if not isinstance(metadata, dict):
        raise invalid("metadata", "Invalid object: metadata must be a hash.")
    return {k: v for k, v in metadata.items() if v != ""}


def update_metadata(rec: dict, value) -> None:
    """Apply an update's ``metadata`` to ``rec`` as Stripe does: an empty string clears it all,
    a key with an empty value is removed, any other key is set; None leaves it alone."""
    if value == "":
        rec["metadata"] = {}
    elif isinstance(value, dict):
        for k, v in value.items():
            if v == "":
                rec["metadata"].pop(k, None)
            else:
                rec["metadata"][k] = v
    elif value is not None:
        raise invalid("metadata", "Invalid object: metadata must be a hash.")


# -- lists -------------------------------------------------------------------------------
def list_expand(params: dict) -> list[str]:
    """A list's ``expand[]``: paths into each listed object, written ``data.<path>``."""
    return [e.removeprefix("data.") for e in as_list(params.get("expand"), "expand")]


def created_test(created) -> Callable[[dict], bool] | None:
    """``created`` (an integer or a gt/gte/lt/lte hash) as a test of a record, checked now."""
    if created in (None, ""):
        return None
    if isinstance(created, str):
        value = integer(created, "created")
        return lambda r: r["created"] == value
    if not isinstance(created, dict):
        raise invalid("created", "Invalid created: must be an integer or a hash.")
    ops = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
    bounds = []
    for op, raw in created.items():
        if op not in ops:
            raise unknown(f"created[{op}]")
        bounds.append((ops[op], integer(raw, f"created[{op}]")))
    return lambda r: all(compare(r["created"], value) for compare, value in bounds)


def filter_created(recs: list[dict], created) -> list[dict]:
    test = created_test(created)
    return recs if test is None else [r for r in recs if test(r)]


def all_of(*tests: Callable[[dict], bool] | None) -> Callable[[dict], bool] | None:
    """One test of a record from several (None: no test)."""
    tests = tuple(t for t in tests if t is not None)
    if len(tests) <= 1:
        return tests[0] if tests else None
    return lambda r: all(t(r) for t in tests)


def paginate(
    recs: list[dict],
    params: dict,
    kind: str,
    keep: Callable[[dict], bool] | None = None,
    position: Callable[[str], int | None] | None = None,
) -> tuple[list[dict], bool]:
    """Slice a newest-first list by limit / starting_after / ending_before as Stripe does.

    ``keep`` filters lazily: the scan starts at the cursor and stops once the page and one more
    record are found, so each call of a paging client costs its page, not the whole table
    (recon's events pass over a bench run's 100k+ events made the emulator the busiest
    process). ``position`` finds a cursor in ``recs`` by the store's id index, without a scan."""
    limit = 10
    if params.get("limit") not in (None, ""):
        limit = integer(params["limit"], "limit")
        if not 1 <= limit <= 100:
            raise invalid(
                "limit",
                "This value must be greater than or equal to 1."
                if limit < 1
                else "This value must be less than or equal to 100.",
            )
    after, before = params.get("starting_after"), params.get("ending_before")
    if after and before:
        raise invalid(
            "starting_after", "You may only specify one of these parameters: ending_before, "
            "starting_after.",
        )  # fmt: skip
    keep = all_of(keep, _in_request_mode()) or (lambda r: True)
    if before:
        at = _cursor(recs, before, kind, "ending_before", keep, position)
        found = _first_kept(recs, range(at - 1, -1, -1), keep, limit + 1)
        return found[:limit][::-1], len(found) > limit
    start = _cursor(recs, after, kind, "starting_after", keep, position) + 1 if after else 0
    found = _first_kept(recs, range(start, len(recs)), keep, limit + 1)
    return found[:limit], len(found) > limit


def _in_request_mode() -> Callable[[dict], bool] | None:
    """The request's mode as a test of a listed record."""
    mode = request_livemode.get()
    if mode is None:
        return None
    return lambda r: mode_of(r) in (None, mode)


def _cursor(recs: list[dict], oid: str, kind: str, param: str, keep, position) -> int:
    """The cursor's index: it must name an object the filters keep, as on Stripe."""
    if position is not None:
        at = position(oid)
    else:
        at = next((i for i, r in enumerate(recs) if r["id"] == oid), None)
    if at is None or not keep(recs[at]):
        raise no_such(kind, oid, param=param, status=400)
    return at


def _first_kept(recs: list[dict], indexes: range, keep, count: int) -> list[dict]:
    found = []
    for i in indexes:
        if keep(recs[i]):
            found.append(recs[i])
            if len(found) == count:
                break
    return found


# Stripe's zero-decimal and three-decimal currencies; every other has two minor digits.
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}


def money(amount: int | None, currency: str | None) -> str:
    """Minor units as Stripe's pages show them: 2599, "eur" -> "€25.99"; integers only."""
    if amount is None:
        return ""
    cur = (currency or "usd").lower()
    digits = 0 if cur in ZERO_DECIMAL else 3 if cur in THREE_DECIMAL else 2
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10**digits)
    value = f"{sign}{major:,}.{minor:0{digits}d}" if digits else f"{sign}{major:,}"
    symbol = SYMBOLS.get(cur)
    return f"{symbol}{value}" if symbol else f"{value} {cur.upper()}"
