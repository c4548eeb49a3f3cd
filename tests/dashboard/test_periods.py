"""Unit tests of the overview's periods: presets, custom ranges and their errors, local days in
a merchant's zone (23 and 25 hours when the clocks change), and the previous period; local
minutes of a time input read in a merchant's zone across clock changes."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.common.timezones import checked_zone_name, local_midnight_utc, minute_range, zone_of
from app.reporting.overview import NOT_COUNTED, _buckets, change
from app.reporting.periods import MAX_DAYS, Period, PeriodError, parse_period, preset_period

PARIS = ZoneInfo("Europe/Paris")
UTC = ZoneInfo("UTC")
# 2026-12-07 12:00 UTC is 13:00 in Paris, 2026-12-08 01:00 in Auckland.
NOW = datetime(2026, 12, 7, 12, 0)


@pytest.mark.parametrize(
    "preset, first, last",
    [
        ("today", date(2026, 12, 7), date(2026, 12, 7)),
        ("last_7_days", date(2026, 12, 1), date(2026, 12, 7)),
        ("last_30_days", date(2026, 11, 8), date(2026, 12, 7)),
        ("this_month", date(2026, 12, 1), date(2026, 12, 7)),
        ("last_month", date(2026, 11, 1), date(2026, 11, 30)),
    ],
)
def test_presets_are_whole_local_days_up_to_today(preset, first, last):
    period = parse_period({"range": preset}, now=NOW, zone=PARIS)
    assert (period.first, period.last, period.preset) == (first, last, preset)


def test_today_is_the_merchants_day_not_utcs():
    auckland = ZoneInfo("Pacific/Auckland")
    period = parse_period({"range": "today"}, now=NOW, zone=auckland)
    assert period.first == date(2026, 12, 8)
    assert period.start == datetime(2026, 12, 7, 11, 0)  # midnight NZDT (UTC+13)


def test_last_month_in_january_is_december():
    period = preset_period("last_month", date(2027, 1, 15), UTC)
    assert (period.first, period.last) == (date(2026, 12, 1), date(2026, 12, 31))


def test_no_range_is_the_last_30_days_and_dates_alone_a_custom_range():
    assert parse_period({}, now=NOW, zone=UTC).preset == "last_30_days"
    custom = parse_period({"from": "2026-10-01", "to": "2026-10-03"}, now=NOW, zone=UTC)
    assert (custom.preset, custom.length) == ("custom", 3)


@pytest.mark.parametrize(
    "args, field, words",
    [
        ({"range": "custom", "from": "2026-12-05", "to": "2026-12-01"}, "from", "is after"),
        ({"range": "custom", "from": "2025-01-01", "to": "2026-12-01"}, "to", "at most 366"),
        ({"range": "custom", "from": "2026-13-01", "to": "2026-12-01"}, "from", "YYYY-MM-DD"),
        ({"range": "custom", "from": "01/12/2026", "to": "2026-12-01"}, "from", "YYYY-MM-DD"),
        ({"range": "custom", "from": "2026-12-01", "to": "tomorrow"}, "to", "YYYY-MM-DD"),
        ({"range": "custom", "from": "", "to": "2026-12-01"}, "from", "Enter the start"),
        ({"range": "custom", "from": "2026-12-01"}, "to", "Enter the end"),
        ({"range": "custom", "from": "1999-12-01", "to": "1999-12-02"}, "from", "year 2000"),
        ({"range": "yesterday-ish"}, "preset", "Unknown range"),
    ],
)
def test_bad_ranges_say_what_is_wrong(args, field, words):
    with pytest.raises(PeriodError) as info:
        parse_period(args, now=NOW, zone=UTC)
    assert info.value.field == field
    assert words in str(info.value)


def test_a_year_is_the_longest_range():
    first = date(2024, 1, 1)
    last = first + timedelta(days=MAX_DAYS - 1)
    args = {"range": "custom", "from": first.isoformat(), "to": last.isoformat()}
    assert parse_period(args, now=NOW, zone=UTC).length == MAX_DAYS


def test_dst_days_are_23_and_25_hours_long():
    spring = Period(date(2026, 3, 29), date(2026, 3, 29), PARIS)
    autumn = Period(date(2026, 10, 25), date(2026, 10, 25), PARIS)
    assert spring.end - spring.start == timedelta(hours=23)
    assert autumn.end - autumn.start == timedelta(hours=25)
    assert spring.start == datetime(2026, 3, 28, 23, 0)  # midnight CET
    assert autumn.end == datetime(2026, 10, 25, 23, 0)  # midnight CET again


def test_a_skipped_midnight_starts_the_day_when_it_starts():
    # Santiago skips 00:00-01:00 on 2026-09-06: the day begins at 01:00 -03, 04:00 UTC.
    assert local_midnight_utc(date(2026, 9, 6), ZoneInfo("America/Santiago")) == datetime(
        2026, 9, 6, 4, 0
    )


NEW_YORK = ZoneInfo("America/New_York")
END = timedelta(seconds=59, microseconds=999999)  # "to 01:30" means to the end of that minute


@pytest.mark.parametrize(
    "first, last, start, end",
    [
        # An ordinary window: EST is UTC-5.
        ("2026-11-20 12:00", "2026-11-20 13:00", "2026-11-20 17:00", "2026-11-20 18:00"),
        # 01:30 happens twice on 1 November (EDT, then EST): first as a start, second as an end.
        ("2026-11-01 01:30", "2026-11-01 01:30", "2026-11-01 05:30", "2026-11-01 06:30"),
        # 02:00-02:59 never happens on 8 March: the window starts when the clocks jump (07:00
        # UTC) and one ending in the gap ends just before it.
        ("2026-03-08 02:30", "2026-03-08 03:00", "2026-03-08 07:00", "2026-03-08 07:00"),
        ("2026-03-08 01:00", "2026-03-08 02:30", "2026-03-08 06:00", None),
    ],
)
def test_a_local_minute_window_holds_every_moment_the_wall_clock_reads_in_it(
    first, last, start, end
):
    parse = datetime.fromisoformat
    got = minute_range(parse(first), parse(last), NEW_YORK)
    jump = datetime(2026, 3, 8, 7, 0)
    assert got == (parse(start), parse(end) + END if end else jump - timedelta(microseconds=1))
    assert minute_range(None, None, NEW_YORK) == (None, None)


def test_previous_period_has_the_same_number_of_days_just_before():
    period = Period(date(2026, 3, 23), date(2026, 3, 29), PARIS)  # a week with a 23 h day
    previous = period.previous()
    assert (previous.first, previous.last) == (date(2026, 3, 16), date(2026, 3, 22))
    assert previous.end == period.start
    assert period.end - period.start == timedelta(days=7, hours=-1)
    month = preset_period("this_month", date(2026, 12, 7), UTC).previous()
    assert (month.first, month.last) == (date(2026, 11, 24), date(2026, 11, 30))


def test_a_running_period_is_compared_until_the_same_time_of_day():
    today = parse_period({"range": "today"}, now=NOW, zone=PARIS)
    assert today.compared_until(NOW) == NOW - timedelta(days=1)  # yesterday 13:00 Paris
    finished = Period(date(2026, 11, 1), date(2026, 11, 30), PARIS)
    assert finished.compared_until(NOW) == finished.previous().end


def test_compared_until_follows_the_wall_clock_across_a_dst_change():
    # Monday 30 March 10:00 CEST against Sunday 29 March (23 h) 10:00 CEST.
    now = datetime(2026, 3, 30, 8, 0)
    period = Period(date(2026, 3, 30), date(2026, 3, 30), PARIS)
    assert period.compared_until(now) == datetime(2026, 3, 29, 8, 0)


def test_buckets_cover_both_periods_in_order():
    period = Period(date(2026, 3, 29), date(2026, 3, 30), PARIS)
    bounds, numbers = _buckets(period, period.compared_until(datetime(2026, 3, 30, 8, 0)))
    assert bounds == sorted(bounds) and len(bounds) == len(numbers) + 1
    assert bounds[0] == period.previous().start and bounds[-1] == period.end
    assert numbers == [-2, -3, NOT_COUNTED, 0, 1]
    assert bounds[2] == datetime(2026, 3, 28, 9, 0)  # its 2nd day until 10:00 CET, as now


@pytest.mark.parametrize(
    "current, previous, expected",
    [(150, 100, 0.5), (50, 100, -0.5), (100, 100, 0.0), (5, 0, None), (-20, -10, -1.0)],
)
def test_change_is_a_fraction_of_the_previous_figure(current, previous, expected):
    assert change(current, previous) == expected


@pytest.mark.parametrize("name", ["Europe/Paris", " America/New_York ", "UTC"])
def test_iana_zone_names_are_accepted(name):
    assert checked_zone_name(name) == name.strip()


@pytest.mark.parametrize("name", ["", "Mars/Olympus", "Europe/../etc", "+02:00", "CEST "])
def test_other_zone_names_are_refused_with_a_message(name):
    with pytest.raises(ValueError) as info:
        checked_zone_name(name)
    assert "time zone" in str(info.value)


def test_a_saved_zone_this_server_does_not_know_reads_as_utc():
    assert zone_of("Atlantis/Capital") == UTC
    assert zone_of(None) == UTC and zone_of("Europe/Paris") == PARIS
