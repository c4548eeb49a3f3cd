"""Decode Stripe's form encoding (``a[b][0][c]=v``) into nested dicts and lists."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

_KEY_RE = re.compile(r"\[([^\[\]]*)\]")


def split_key(key: str) -> list[str]:
    """``a[0][b]`` -> ``["a", "0", "b"]``."""
    head, _, rest = key.partition("[")
    if not rest:
        return [key]
    return [head, *_KEY_RE.findall("[" + rest)]


def decode(raw: str | bytes) -> dict:
    """Parse a query string or body; accepts ``a[b]`` and ``a%5Bb%5D``, ``x[]`` and ``x[0]``."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    root: dict = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        parts = split_key(key)
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":
                # ``x[]=..``: append, numbering after what is already there.
                part = str(len(node))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    return _listify(root)


def _listify(node):
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted
