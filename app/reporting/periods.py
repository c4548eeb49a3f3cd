"""The overview's date ranges: presets and custom dates, read as whole days of the merchant's
time zone, and the previous period of the same length they are compared with.

A day is local midnight to local midnight: 23 or 25 hours when the clocks change. Stored
timestamps are naive UTC, so every boundary is converted once here and the queries compare the
stored column with those instants (an index range, no per-row conversion in SQL).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.common.timezones import local_midnight_utc, to_local

# The presets a merchant picks from, in the picker's order, with their words.
PRESETS = {
    "today": "Today",
    "last_7_days": "Last 7 days",
    "last_30_days": "Last 30 days",
    "this_month": "This month",
    "last_month": "Last month",
    "custom": "Custom range",
}
DEFAULT_PRESET = "last_30_days"
# Longest range one page reads: a year (a leap year's too) per period, and the previous one.
MAX_DAYS = 366


class PeriodError(ValueError):
    """A range the overview cannot show; `field` is the input it is about (for the form)."""

    def __init__(self, message: str, field: str = "preset"):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Period:
    """Local days `first` to `last` (both included) in `zone`."""

    first: date
    last: date
    zone: ZoneInfo
    preset: str = "custom"

    @property
    def length(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range(self.length)]

    @property
    def start(self) -> datetime:
        """Naive UTC start (included)."""
        return local_midnight_utc(self.first, self.zone)

    @property
    def end(self) -> datetime:
        """Naive UTC end (excluded): the start of the day after `last`."""
        return local_midnight_utc(self.last + timedelta(days=1), self.zone)

    def day_starts(self) -> list[datetime]:
        """The naive UTC start of each day, then `end`: len(days) + 1 boundaries."""
        return [local_midnight_utc(d, self.zone) for d in self.days] + [self.end]

    def compared_until(self, now: datetime) -> datetime:
        """Where the previous period's figures stop (naive UTC): its end, or, while this
        period is still running, the same local time of day after as many days as have
        passed in this one (today until 14:30 is compared with yesterday until 14:30)."""
        previous = self.previous()
        if not self.start <= now < self.end:
            return previous.end
        elapsed = to_local(now, self.zone).replace(tzinfo=None) - datetime.combine(
            self.first, time()
        )
        wall = datetime.combine(previous.first, time()) + elapsed
        return wall.replace(tzinfo=self.zone).astimezone(UTC).replace(tzinfo=None)

    def previous(self) -> Period:
        """The same number of days just before (this month's first 7 days: the 7 before)."""
        last = self.first - timedelta(days=1)
        return Period(last - timedelta(days=self.length - 1), last, self.zone, "previous")

    @property
    def label(self) -> str:
        if self.first == self.last:
            return _day(self.first)
        return f"{_day(self.first)} – {_day(self.last)}"


def _day(d: date) -> str:
    return f"{d.day} {d.strftime('%b %Y')}"


def preset_period(preset: str, today: date, zone: ZoneInfo) -> Period:
    """The local days a preset means on `today` (a local date)."""
    if preset == "today":
        return Period(today, today, zone, preset)
    if preset == "last_7_days":  # today included, as Stripe's "Last 7 days"
        return Period(today - timedelta(days=6), today, zone, preset)
    if preset == "last_30_days":
        return Period(today - timedelta(days=29), today, zone, preset)
    if preset == "this_month":
        return Period(today.replace(day=1), today, zone, preset)
    if preset == "last_month":
        last = today.replace(day=1) - timedelta(days=1)
        return Period(last.replace(day=1), last, zone, preset)
    raise PeriodError(f"Unknown range {preset!r}: choose one of the presets or a custom range.")


def _parse_day(text: str | None, field: str, words: str) -> date:
    text = (text or "").strip()
    if not text:
        raise PeriodError(f"Enter the {words} date.", field)
    try:
        return date.fromisoformat(text) if len(text) == 10 else _bad_day(text, words, field)
    except ValueError:
        return _bad_day(text, words, field)


def _bad_day(text: str, words: str, field: str) -> date:
    raise PeriodError(f"The {words} date {text!r} is not a date: use YYYY-MM-DD.", field)


def parse_period(args: Mapping[str, str], *, now: datetime, zone: ZoneInfo) -> Period:
    """The period a request asks for (`range`, and `from`/`to` for a custom one), in `zone`,
    on the local day `now` (naive UTC) falls on; PeriodError says what is wrong."""
    today = to_local(now, zone).date()
    preset = (args.get("range") or "").strip()
    if not preset:
        # Dates alone mean a custom range (a link someone typed); nothing means the default.
        preset = "custom" if args.get("from") or args.get("to") else DEFAULT_PRESET
    if preset != "custom":
        return preset_period(preset, today, zone)
    first = _parse_day(args.get("from"), "from", "start")
    last = _parse_day(args.get("to"), "to", "end")
    if first > last:
        raise PeriodError(
            f"The start date {first.isoformat()} is after the end date {last.isoformat()}.",
            "from",
        )
    if (last - first).days + 1 > MAX_DAYS:
        raise PeriodError(
            f"The range is {(last - first).days + 1} days long; choose at most {MAX_DAYS} days.",
            "to",
        )
    if first.year < 2000 or last > today + timedelta(days=MAX_DAYS):
        raise PeriodError("Choose dates between the year 2000 and next year.", "from")
    return Period(first, last, zone, "custom")
