"""Summarise py-spy raw (collapsed) stacks: `python -m bench.topstacks FILE [N]`.

Prints the share of samples in which each function appears (inclusive) and where it is on top
(self), so "what does a request spend its time on" reads in a terminal.
"""

from __future__ import annotations

import sys
from collections import Counter


def summarise(path: str, top: int = 40) -> str:
    inclusive: Counter = Counter()
    own: Counter = Counter()
    total = 0
    for line in open(path):
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[_short(frames[-1])] += n
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += n
    out = [f"{path}: {total} samples", "inclusive:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    out.append("self:")
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top // 2)]
    return "\n".join(out)


def _short(frame: str) -> str:
    # "func (path/to/file.py:123)" -> "func (file.py)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    parts = where.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else where
    return f"{name} ({short})"


if __name__ == "__main__":
    print(summarise(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40))
