"""The tooling CI relies on: the type check's baseline (scripts/typecheck.py), where errors the
baseline does not hold fail and errors gone pass with the command that shrinks it; and the
locks, which pin every declared dependency within its range, with hashes, the same in both."""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from scripts import typecheck

MYPY_OUTPUT = """\
app/config.py:12: error: Incompatible return value type (got "int", expected "str")  [return-value]
app/config.py:40:7: error: Item "None" of "str | None" has no attribute "upper"  [union-attr]
app/config.py:41: note: See https://mypy.rtfd.io/en/stable/_refs.html#code-union-attr
app/models/payment.py:9: error: Name "Foo" already defined on line 3  [no-redef]
"""


def test_errors_are_read_without_their_line_numbers():
    assert typecheck.errors_of(MYPY_OUTPUT) == Counter(
        {
            'app/config.py: [return-value] Incompatible return value type (got "int", '
            'expected "str")': 1,
            'app/config.py: [union-attr] Item "None" of "str | None" has no attribute "upper"': 1,
            'app/models/payment.py: [no-redef] Name "Foo" already defined on line N': 1,
        }
    )


def test_a_second_error_of_a_kind_the_baseline_holds_once_is_new():
    baseline = typecheck.errors_of(MYPY_OUTPUT)
    twice = typecheck.errors_of(MYPY_OUTPUT + MYPY_OUTPUT.splitlines()[0].replace(":12:", ":90:"))
    new, gone = typecheck.compare(twice, baseline)
    assert len(new) == 1 and new[0].startswith("app/config.py: [return-value]") and gone == 0
    new, gone = typecheck.compare(baseline, twice)
    assert new == [] and gone == 1


@pytest.mark.slow
def test_the_check_fails_on_an_error_the_baseline_does_not_hold(tmp_path, monkeypatch, capsys):
    """The real mypy over app/ against the committed baseline minus one of its lines."""
    committed = typecheck.read_baseline()
    assert typecheck.main([]) == 0, capsys.readouterr().out
    dropped = sorted(committed)[0]
    smaller = tmp_path / "baseline.txt"
    typecheck.write_baseline(committed - Counter({dropped: 1}), smaller)
    monkeypatch.setattr(typecheck, "BASELINE", smaller)
    capsys.readouterr()
    assert typecheck.main([]) == 1
    out = capsys.readouterr().out
    assert "1 mypy error(s) the baseline does not hold" in out
    assert dropped.split(":")[0] in out

    typecheck.write_baseline(committed + Counter({"app/x.py: [misc] gone since": 1}), smaller)
    assert typecheck.main([]) == 0
    assert "1 fewer than the baseline" in capsys.readouterr().out


# --- the locks ---------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+)")


def _locked(name: str) -> dict[str, tuple[Version, int]]:
    """Each package the lock pins: its version and how many hashes it carries."""
    pins: dict[str, tuple[Version, int]] = {}
    current = None
    for line in (ROOT / name).read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match[1])
            pins[current] = (Version(match[2].rstrip(" \\")), 0)
        elif current and "--hash=sha256:" in line:
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def _declared(path: str, extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / path).read_text())["project"]
    listed = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(line) for line in listed]


@pytest.mark.parametrize(
    ("lock", "declared"),
    [
        ("requirements.txt", [("pyproject.toml", None)]),
        (
            "requirements-dev.txt",
            [
                ("pyproject.toml", None),
                ("pyproject.toml", "dev"),
                ("stripe_emulator/pyproject.toml", None),
            ],
        ),
    ],
)
def test_each_lock_pins_every_declared_dependency_within_its_range_with_hashes(lock, declared):
    """Someone who edits pyproject.toml and forgets to recompile the lock, or edits the lock by
    hand, is told here: the lock names each dependency at a version its range accepts."""
    pins = _locked(lock)
    for path, extra in declared:
        for requirement in _declared(path, extra):
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{lock} does not pin {requirement} ({path}): recompile it"
            version, _ = pins[name]
            assert version in requirement.specifier, f"{lock} pins {name}=={version}: {requirement}"
    unhashed = [name for name, (_, hashes) in pins.items() if hashes == 0]
    assert unhashed == []


def test_the_dev_lock_installs_what_production_runs():
    production, dev = _locked("requirements.txt"), _locked("requirements-dev.txt")
    differ = {name: (pin[0], dev.get(name, (None,))[0]) for name, pin in production.items()}
    assert {name: pair for name, pair in differ.items() if pair[0] != pair[1]} == {}


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("project", "must_hold"),
    [
        (
            ".",
            {
                "app/__init__.py",
                "app/templates/dashboard/layout.html",
                "app/static/css/app.css",
                "app/migrations/alembic.ini",
                "app/migrations/env.py",
                "app/migrations/versions/0012_modes.py",
            },
        ),
        ("stripe_emulator", {"stripe_emulator/__init__.py", "stripe_emulator/api.py"}),
    ],
    ids=["paybridge", "emulator"],
)
def test_pip_wheel_builds_each_package_with_its_data_and_nothing_of_the_tests(
    tmp_path, project, must_hold
):
    """`pip wheel .` works, and an installed PayBridge finds its templates, static files and
    migrations (`flask db upgrade` outside the source tree); tests, bench and the demo shop are
    not part of it."""
    import shutil
    import subprocess
    import sys
    import zipfile

    # From a copy without earlier builds: setuptools would reuse files a build/ left behind.
    source = tmp_path / "source"
    leftovers = ("build", "*.egg-info", ".venv", ".git", "__pycache__", "test-artifacts")
    shutil.copytree(ROOT / project, source, ignore=shutil.ignore_patterns(*leftovers))
    wheels = tmp_path / "wheels"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-w", str(wheels), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (wheel,) = wheels.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert must_hold <= names, must_hold - names
    assert not {n for n in names if n.split("/")[0] in ("tests", "bench", "demo_shop")}
