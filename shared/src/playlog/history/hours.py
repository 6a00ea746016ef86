"""Where a time zone's local hours start, for the hour buckets of the running totals.

Every zone offset in use is a multiple of 15 minutes, so local hours start at minute 0,
15, 30 or 45 of a UTC hour: 0 in Europe/Berlin, 30 in Asia/Kolkata (+05:30) and
America/St_Johns (-03:30), 15 in Asia/Kathmandu (+05:45). ``play_hours`` buckets each
user's plays from the minute of their own zone (``users.hour_start_minute``), so the
buckets are whole local hours, and analytics in that zone never need the raw plays.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo


def hour_start(tz: ZoneInfo, at: datetime) -> int:
    """The minute past the UTC hour at which local hours of ``tz`` start at ``at``."""
    offset = at.astimezone(tz).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    return -minutes % 60


def zone_hour_start(name: str, now: datetime | None = None) -> int:
    """The minute for a user in zone ``name`` (the zone's offset now); 0 for an offset
    that is not a multiple of 15 minutes (none is in use), whose hours then come from
    the raw plays."""
    minute = hour_start(ZoneInfo(name), now or datetime.now(UTC))
    return minute if minute % 15 == 0 else 0


@lru_cache(maxsize=1024)  # asked on every analytics call; 7 ms for an all-time window
def window_hour_start(tz: ZoneInfo, start: datetime, end: datetime) -> int | None:
    """The minute at which local hours of ``tz`` start throughout [start, end), or None
    when it changes within the window (Australia/Lord_Howe moves by 30 minutes).

    Offsets change at most a few times a year, so sampling twice a month (and both ends)
    finds any change; the span is clipped to the years plays can exist in.
    """
    lower = max(start, datetime(2000, 1, 1, tzinfo=UTC))
    upper = min(end, datetime.now(UTC) + timedelta(days=366))
    instants = [lower, upper]
    day: date = lower.date().replace(day=1)
    while day < upper.date():
        for d in (1, 15):
            instants.append(datetime(day.year, day.month, d, 12, tzinfo=UTC))
        day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    minutes = {hour_start(tz, instant) for instant in instants}
    return minutes.pop() if len(minutes) == 1 else None
