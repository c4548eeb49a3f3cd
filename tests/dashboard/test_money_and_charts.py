"""Unit tests of two pure helpers: currency exponents and the chart axis."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from app.common.money import format_minor, format_money, parse_major, to_minor
from app.reporting.charts import _axis_top, amount_chart, breakdown_chart, volume_chart
from app.reporting.queries import DayStats


@pytest.mark.parametrize(
    "amount, currency, text",
    [
        (1050, "EUR", "10.50"),
        (5, "eur", "0.05"),
        (1050, "JPY", "1050"),
        (10500, "KWD", "10.500"),
        (-250, "USD", "-2.50"),
    ],
)
def test_format_minor_knows_the_exponent(amount, currency, text):
    assert format_minor(amount, currency) == text


def test_format_money_appends_the_code():
    assert format_money(123456, "eur") == "1234.56 EUR"


@pytest.mark.parametrize(
    "typed, currency, low, high",
    [
        ("12.5", "EUR", 1250, 1250),
        ("12,50", "EUR", 1250, 1250),
        ("12.345", "EUR", 1235, 1234),  # bounds stay inclusive of what was meant
        ("500", "JPY", 500, 500),
        ("10.5", "JPY", 11, 10),
        ("1.0005", "KWD", 1001, 1000),
    ],
)
def test_major_units_become_minor_bounds(typed, currency, low, high):
    value = parse_major(typed)
    assert to_minor(value, currency, round_up=True) == low
    assert to_minor(value, currency) == high


@pytest.mark.parametrize("typed", ["abc", "-1", "1e20", "NaN", "Infinity", ""])
def test_bad_amounts_are_refused_with_a_message(typed):
    with pytest.raises(ValueError) as info:
        parse_major(typed)
    assert str(info.value)


@pytest.mark.parametrize("largest, top", [(0, 4), (3, 4), (5, 8), (10, 12), (72, 80), (250, 280)])
def test_count_axis_has_four_whole_steps(largest, top):
    assert _axis_top(largest) == top
    assert top / 4 == int(top / 4)


def test_charts_are_labelled_svg_with_a_text_summary():
    start = date(2026, 11, 1)
    days = [DayStats(start + timedelta(days=i)) for i in range(14)]
    days[3].total, days[3].succeeded, days[3].failed = 5, 3, 1
    days[3].amounts = {"EUR": 4200}
    svg = str(volume_chart(days))
    assert svg.startswith('<svg class="chart"') and 'role="img"' in svg
    assert (
        "5 payments over 14 days" in svg and "3 succeeded, 1 failed, 0 canceled, 1 not final" in svg
    )
    assert "Busiest day: 04 Nov with 5." in svg
    assert svg.count("<rect") == 4 + 3  # legend (four series) + three stacked segments
    money = str(amount_chart(days, "EUR"))
    assert "total 42.00 EUR" in money
    assert "04 Nov: 42.00 EUR" in money


def test_chart_text_is_escaped():
    days = [DayStats(date(2026, 11, 1))]
    svg = str(amount_chart(days, "<b>"))
    assert "<b>" not in svg


def test_breakdown_chart_says_each_share_and_escapes_labels():
    svg = str(
        breakdown_chart(
            "Failed payments by reason",
            [("Declined", 3), ("<script>", 1)],
            unit="failed payments",
            colour="#c62828",
        )
    )
    assert svg.startswith('<svg class="chart breakdown"') and 'role="img"' in svg
    assert "4 failed payments: Declined 3 (75%); &lt;script&gt; 1 (25%)" in svg
    assert "<script>" not in svg
    assert svg.count("<rect") == 2
    empty = str(breakdown_chart("Paid by method", [], unit="paid payments", colour="#1a7f37"))
    assert "No paid payments in this period." in empty
