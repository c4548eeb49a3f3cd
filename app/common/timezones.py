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
    zone = zone or ZoneInfo("UTC")
    start = local_midnight_utc(first, zone) if first else None
    end = local_midnight_utc(last + timedelta(days=1), zone) if last else None
    return start, end


def to_local(value: datetime, zone: ZoneInfo) -> datetime:
    """A stored (naive UTC) time in `zone`."""
    return value.replace(tzinfo=UTC).astimezone(zone)
