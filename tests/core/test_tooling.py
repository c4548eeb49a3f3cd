"""The type check's baseline (scripts/typecheck.py): errors the baseline does not hold fail CI,
errors gone let it pass with the command that shrinks the baseline."""

from __future__ import annotations

from collections import Counter

import pytest

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
