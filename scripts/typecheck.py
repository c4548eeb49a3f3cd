"""The type check CI runs: mypy over app/ (settings in pyproject.toml), held to a baseline.

The code predates the type check, so it starts with errors; .ci/mypy-baseline.txt lists them
(file, code and message; no line numbers, which move with every edit). The check fails when an
error appears that the baseline does not hold, and passes when some are gone, saying how to
shrink the baseline so they cannot come back:

    .venv/bin/python scripts/typecheck.py            # the check
    .venv/bin/python scripts/typecheck.py --update   # write the baseline from today's errors
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / ".ci" / "mypy-baseline.txt"
# path:line: error: message  [code]   (mypy's default output, one error per line)
ERROR = re.compile(
    r"^(?P<path>[^:\s]+):\d+(?::\d+)?: error: (?P<message>.*?)\s+\[(?P<code>[a-z-]+)\]$"
)


def errors_of(mypy_output: str) -> Counter[str]:
    """Each error as `path: [code] message`, counted; notes and the summary line are left out."""
    found: Counter[str] = Counter()
    for line in mypy_output.splitlines():
        match = ERROR.match(line)
        if match:
            message = re.sub(r"\bline \d+\b", "line N", match["message"])
            found[f"{match['path']}: [{match['code']}] {message}"] += 1
    return found


def read_baseline(path: Path | None = None) -> Counter[str]:
    path = path or BASELINE
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(line for line in lines if line and not line.startswith("#"))


def write_baseline(found: Counter[str], path: Path = BASELINE) -> None:
    header = (
        "# mypy errors app/ is allowed to keep (scripts/typecheck.py); fewer is always welcome.\n"
    )
    path.write_text(header + "".join(f"{line}\n" for line in sorted(found.elements())))


def compare(found: Counter[str], baseline: Counter[str]) -> tuple[list[str], int]:
    """The errors beyond the baseline, and how many of the baseline's are gone."""
    new = sorted((found - baseline).elements())
    gone = sum((baseline - found).values())
    return new, gone


def run_mypy() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--no-pretty"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if result.returncode == 2 or (result.returncode == 1 and not errors_of(result.stdout)):
        # mypy itself failed (bad settings, a syntax error): there is nothing to compare.
        sys.exit(
            f"typecheck: mypy did not run ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--update", action="store_true", help="write the baseline and exit")
    args = parser.parse_args(argv)
    output = run_mypy()
    found = errors_of(output)
    if args.update:
        write_baseline(found)
        print(f"typecheck: baseline written, {sum(found.values())} errors")
        return 0
    new, gone = compare(found, read_baseline())
    if new:
        print(f"typecheck: {len(new)} mypy error(s) the baseline does not hold:")
        print("\n".join(line for line in output.splitlines() if _names_one_of(line, new)))
        print("fix them (the baseline only ever shrinks)")
        return 1
    total = sum(found.values())
    if gone:
        print(
            f"typecheck: {total} errors, {gone} fewer than the baseline: lock that in with "
            "`.venv/bin/python scripts/typecheck.py --update` and commit .ci/mypy-baseline.txt"
        )
    else:
        print(f"typecheck: {total} errors, as in the baseline")
    return 0


def _names_one_of(line: str, entries: list[str]) -> bool:
    return any(entry in errors_of(line) for entry in entries)


if __name__ == "__main__":
    sys.exit(main())
