"""Every place that shows money does it in integers, with the currency's own minor digits: the
dashboard's (app.common.money, and the charts' axis built on it), the demo shop's and the
emulator's hosted page and errors. 0.1 + 0.2 is not money."""

from __future__ import annotations

import re
from datetime import date

import pytest

from app.common.money import format_minor, format_money
from demo_shop.money import format_money as shop_money
from stripe_emulator.common import money as stripe_money

AMOUNTS = [
    (123456789, "EUR", "1,234,567.89"),
    (500, "JPY", "500"),
    (1005, "KWD", "1.005"),
    (1, "EUR", "0.01"),
    # 0.29 * 100 is 28.999999999999996 in floats: the integers must not lose the cent.
    (29, "EUR", "0.29"),
]


@pytest.mark.parametrize("amount,currency,text", AMOUNTS)
def test_paybridge_formats_minor_units_exactly(amount, currency, text):
    assert format_minor(amount, currency, grouped=True) == text
    assert format_money(amount, currency, grouped=True) == f"{text} {currency}"


@pytest.mark.parametrize("amount,currency,text", AMOUNTS)
def test_the_shop_formats_minor_units_exactly(amount, currency, text):
    symbols = {"EUR": "€"}
    expected = f"{symbols[currency]}{text}" if currency in symbols else f"{text} {currency}"
    assert shop_money(amount, currency) == expected


@pytest.mark.parametrize("amount,currency,text", AMOUNTS)
def test_the_emulator_formats_minor_units_exactly(amount, currency, text):
    symbols = {"eur": "€", "jpy": "¥"}
    code = currency.lower()
    expected = f"{symbols[code]}{text}" if code in symbols else f"{text} {currency}"
    assert stripe_money(amount, code) == expected


def test_the_amount_charts_axis_uses_the_currencys_decimals():
    from app.reporting.charts import amount_chart
    from app.reporting.queries import DayStats

    days = [DayStats(day=date(2026, 12, d), amounts={"KWD": 1005 * d}) for d in (1, 2)]
    svg = str(amount_chart(days, "KWD"))
    assert "02 Dec: 2.010 KWD" in svg  # the second day's bar, to the fils
    ticks = re.findall(r'text-anchor="end"[^>]*>([^<]*)<', svg)
    assert ticks == ["0", "0.600", "1.200", "1.800", "2.400"]  # KWD has three decimals
