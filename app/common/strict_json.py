"""JSON read strictly, for bodies that come from outside (API requests, PSP webhooks).

Python's `json` accepts what no database or client should see: `NaN` and `Infinity`, numbers
beyond any column (`1e400` becomes infinity), strings with lone surrogates (`"\\ud800"`, which
the database driver cannot encode), nesting deep enough to exhaust the interpreter's
recursion, and strings of any size. `loads` refuses each of these with StrictJsonError (a
ValueError) naming the problem, so callers answer 400 rather than fail later with a 500.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# A signed 64-bit integer: the widest column or PSP amount anything here is compared with.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_INFINITIES = (float("inf"), float("-inf"))


class StrictJsonError(ValueError):
    """The body is not JSON PayBridge accepts; the message says why (never echoes the body)."""


@dataclass(frozen=True)
class Limits:
    max_depth: int  # objects and arrays inside each other
    max_string: int  # characters in one string (keys included)


def _reject_constant(name: str):
    raise StrictJsonError(f"{name} is not a JSON number")


def _check_string(value: str, limits: Limits) -> None:
    if len(value) > limits.max_string:
        raise StrictJsonError(f"a string is longer than {limits.max_string} characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise StrictJsonError("a string holds invalid Unicode (a lone surrogate)") from None


def _check(document: Any, limits: Limits) -> None:
    """Walk the parsed document without recursion: depth, string sizes, valid Unicode,
    numbers within 64 bits."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_string(value, limits)
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if not INT_MIN <= value <= INT_MAX:
                raise StrictJsonError("a number is out of range")
        elif isinstance(value, float):
            if value in _INFINITIES:  # 1e400 parses as infinity
                raise StrictJsonError("a number is out of range")
        elif isinstance(value, dict | list):
            if depth > limits.max_depth:
                raise StrictJsonError(f"nested deeper than {limits.max_depth} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_string(key, limits)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


def _check_containers_and_numbers(document: Any, limits: Limits) -> None:
    """`_check` without looking at strings, for text that cannot hold a bad one."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limits.max_depth:
            raise StrictJsonError(f"nested deeper than {limits.max_depth} levels")
        for item in value.values() if type(value) is dict else value:
            kind = type(item)
            if kind is dict or kind is list:
                stack.append((item, depth + 1))
            elif kind is int:
                if not INT_MIN <= item <= INT_MAX:
                    raise StrictJsonError("a number is out of range")
            elif kind is float and item in _INFINITIES:
                raise StrictJsonError("a number is out of range")


def loads(body: bytes | str, limits: Limits) -> Any:
    """The parsed document, or StrictJsonError: not UTF-8, not JSON, or beyond `limits`."""
    decoded = isinstance(body, bytes)  # valid UTF-8 holds no raw surrogate
    if decoded:
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise StrictJsonError("the body is not UTF-8") from None
    try:
        # Python refuses integers of more than 4300 digits itself (ValueError).
        document = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise StrictJsonError(f"nested deeper than {limits.max_depth} levels") from None
    except StrictJsonError:
        raise
    except ValueError as exc:
        raise StrictJsonError(f"not valid JSON: {exc}") from None
    # The common case, most webhooks and API bodies: text no longer than a string may be and
    # without \u escapes (a surrogate can only come from one) holds no bad string, so only
    # containers and numbers are left to check (strings are most of a document).
    quick = decoded and len(body) <= limits.max_string and "\\u" not in body
    if quick and type(document) in (dict, list):
        _check_containers_and_numbers(document, limits)
    else:
        _check(document, limits)
    return document
