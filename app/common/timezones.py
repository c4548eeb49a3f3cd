"""Merchants' time zones: IANA names checked against the zone database (zoneinfo + tzdata),
and stored times (naive UTC) shown in one. UTC when a merchant has set none."""

from __future__ import annotations

import functools
import logging
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

log = logging.getLogger(__name__)

DEFAULT_ZONE = "UTC"


def zone_of(name: str | None) -> ZoneInfo:
    """The zone named (an IANA name such as Europe/Paris); UTC when none is set, or when a
    saved name is no longer in this server's zone database (pages still open, in UTC)."""
    try:
        return ZoneInfo(name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("time zone %r is unknown here; showing UTC", name)
        return ZoneInfo(DEFAULT_ZONE)


def checked_zone_name(name: str | None) -> str:
    """`name` (trimmed) when it is an IANA time zone this server knows; ValueError saying what
    is wrong otherwise."""
    name = (name or "").strip()
    if not name:
        raise ValueError("Choose a time zone.")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not a time zone. Use an IANA name such as Europe/Paris or "
            "America/New_York."
        ) from None
    return name


@functools.cache  # available_timezones() walks the tz database on every call
def zone_names() -> tuple[str, ...]:
    """Every zone name a merchant can pick, sorted (for the settings page's suggestions)."""
    return tuple(sorted(n for n in available_timezones() if "/" in n or n == DEFAULT_ZONE))


def local_midnight_utc(day: date, zone: ZoneInfo) -> datetime:
    """The naive UTC instant a local day starts (where midnight is skipped, when it starts)."""
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC).replace(tzinfo=None)


def day_range(
    first: date | None, last: date | None, zone: ZoneInfo | None
) -> tuple[datetime | None, datetime | None]:
    """A filter's local days [first, last] (both included, either open) as naive UTC bounds:
    from the first day's midnight up to, not including, the midnight after the last, in
    `zone` (None: UTC). The lists filter with this, the overview counts its days the same way."""
    zone = zone or zone_of(None)
    start = local_midnight_utc(first, zone) if first else None
    end = local_midnight_utc(last + timedelta(days=1), zone) if last else None
    return start, end


def minute_range(
    first: datetime | None, last: datetime | None, zone: ZoneInfo | None
) -> tuple[datetime | None, datetime | None]:
    """A form's local wall-clock window [first, last] (naive minutes in `zone`, None: UTC;
    `last` included to the end of its minute, either end open) as naive UTC bounds, both
    included: every moment whose clock on the merchant's wall reads inside the window. The
    time inputs (the delivery log's filter, bulk redelivery) read their minutes with this.

    Clock changes: a wall time that happens twice (clocks going back: 01:30 in New York on the
    November change) is its first occurrence as the start and its second as the end, so a
    window never leaves out part of the repeated hour it names. A wall time that never happens
    (clocks going forward: 02:30 in New York on the March change) reads as the moment the
    clocks jump, the start from it and the end just before it, as a skipped midnight starts the
    day when it starts (`local_midnight_utc`)."""
    zone = zone or zone_of(None)
    start = _wall_to_utc(first.replace(second=0, microsecond=0), zone) if first else None
    end = None
    if last:
        last_moment = last.replace(second=59, microsecond=999999)
        end = _wall_to_utc(last_moment, zone, latest=True)
    return start, end


def _wall_to_utc(wall: datetime, zone: ZoneInfo, *, latest: bool = False) -> datetime:
    """A naive wall time in `zone` as naive UTC (see `minute_range` for the clock changes)."""
    earlier_offset = wall.replace(tzinfo=zone, fold=0).astimezone(UTC).replace(tzinfo=None)
    later_offset = wall.replace(tzinfo=zone, fold=1).astimezone(UTC).replace(tzinfo=None)
    if earlier_offset <= later_offset:  # one moment, or a repeated one (the fold)
        return later_offset if latest else earlier_offset
    # Skipped: the jump is after the moment read with the new offset, at or before the one
    # read with the old; find it to the second (transitions fall on whole seconds).
    low, high = later_offset, earlier_offset
    offset_after = to_local(high, zone).utcoffset()
    while high - low > timedelta(seconds=1):
        mid = low + timedelta(seconds=(high - low).total_seconds() // 2)
        if to_local(mid, zone).utcoffset() == offset_after:
            high = mid
        else:
            low = mid
    jump = high.replace(microsecond=0)
    return jump - timedelta(microseconds=1) if latest else jump


def to_local(value: datetime, zone: ZoneInfo) -> datetime:
    """A stored (naive UTC) time in `zone`."""
    return value.replace(tzinfo=UTC).astimezone(zone)
