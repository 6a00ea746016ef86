"""Windows and the two ways of totalling them: raw plays and the running totals."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, date, datetime, timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from playlog.db.models import User
from playlog.history.hours import hour_start, window_hour_start, zone_hour_start
from playlog.testing.history import add_listens, add_track
from playlog.users import set_timezone
from playlog_api.history import queries
from playlog_api.history.discoveries import discoveries
from playlog_api.history.plays import SearchArgs
from playlog_api.history.podcasts import podcasts
from playlog_api.history.skips import skips
from playlog_api.history.totals import load_scope
from playlog_api.history.window import WindowArgs, days_window, resolve
from playlog_api.tools.registry import Sessions

BERLIN = ZoneInfo("Europe/Berlin")


def test_a_relative_window_is_whole_local_days_ending_today() -> None:
    now = datetime(2026, 3, 30, 21, 30, tzinfo=UTC)  # 23:30 in Berlin, summer time
    window = resolve(WindowArgs(days=3), "Europe/Berlin", now=now)
    assert (window.first_day, window.last_day) == (date(2026, 3, 28), date(2026, 3, 30))
    # 28 March starts at 00:00 CET (+1); 31 March starts at 00:00 CEST (+2).
    assert window.start == datetime(2026, 3, 27, 23, tzinfo=UTC)
    assert window.end == datetime(2026, 3, 30, 22, tzinfo=UTC)
    assert window.view.days == 3


def test_an_absolute_window_uses_the_override_zone_and_defaults() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    window = resolve(WindowArgs(start=date(2026, 1, 1), tz="Asia/Kolkata"), "UTC", now=now)
    assert window.start == datetime(2025, 12, 31, 18, 30, tzinfo=UTC)
    assert window.last_day == date(2026, 6, 1)
    open_start = resolve(WindowArgs(end=date(2020, 5, 1)), "UTC", now=now)
    assert open_start.first_day == date(2000, 1, 1)
    default = resolve(WindowArgs(), "UTC", now=now)
    assert default.view.days == 90


def test_the_default_window_belongs_to_the_model_and_its_schema() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    ever = resolve(SearchArgs(query="x"), "UTC", now=now)
    assert (ever.first_day, ever.last_day) == (date(2000, 1, 1), date(2026, 6, 1))
    described = SearchArgs.model_json_schema()["properties"]["days"]["description"]
    assert described.endswith("Default all time when no start/end is given.")
    # A model whose default would disagree with the description it inherits is refused.
    with pytest.raises(TypeError, match="must describe its default of 365 days"):

        class YearArgs(WindowArgs):
            default_days: ClassVar[int] = 365


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"days": 0}, "greater than or equal to 1"),
        ({"days": 36501}, "less than or equal to 36500"),
        ({"days": 5, "end": "2026-01-01"}, "either days or start/end"),
        ({"start": "2026-01-02", "end": "2026-01-01"}, "is after end"),
        ({"end": "2101-01-01"}, "end must be between"),
        ({"tz": "Europe/Atlantis"}, "unknown time zone"),
        ({"tz": "../../etc/passwd"}, "unknown time zone"),
        ({"start": "yesterday"}, "valid date"),
    ],
)
def test_bad_windows_are_refused_with_a_reason(args: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WindowArgs.model_validate(args)


@pytest.mark.parametrize(
    ("zone", "minute"),
    [
        ("Europe/Berlin", 0),
        ("America/New_York", 0),
        ("Asia/Kolkata", 30),
        ("America/St_Johns", 30),  # -03:30
        ("Asia/Kathmandu", 15),  # +05:45
        ("Australia/Eucla", 15),  # +08:45
        ("Australia/Lord_Howe", None),  # +10:30 in winter, +11:00 in summer
    ],
)
def test_where_local_hours_start_within_a_window(zone: str, minute: int | None) -> None:
    start, end = datetime(2020, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    assert window_hour_start(ZoneInfo(zone), start, end) == minute
    if minute is not None:
        assert zone_hour_start(zone) == minute


def test_zones_whose_hour_start_moves_or_is_no_quarter_hour() -> None:
    # Lord Howe's minute is 30 in its winter and 0 in its summer.
    lord_howe = ZoneInfo("Australia/Lord_Howe")
    assert hour_start(lord_howe, datetime(2025, 7, 1, tzinfo=UTC)) == 30
    assert hour_start(lord_howe, datetime(2025, 1, 1, tzinfo=UTC)) == 0
    # Old offsets (Kolkata was +05:21:10 in 1900) are no multiple of 15 minutes: the
    # minute falls back to 0, and such hours would come from the raw plays.
    assert hour_start(ZoneInfo("Asia/Kolkata"), datetime(1900, 1, 1, tzinfo=UTC)) == 39
    assert zone_hour_start("Asia/Kolkata", datetime(1900, 1, 1, tzinfo=UTC)) == 0


@pytest.mark.parametrize(
    ("zone", "other_zone"),
    [
        ("Europe/Berlin", "Asia/Kolkata"),
        ("America/New_York", "Asia/Kathmandu"),
        ("Asia/Kathmandu", "Europe/Berlin"),
        # Same minute: the override is answered from the hour totals.
        ("Europe/Berlin", "Africa/Lagos"),
        ("Asia/Kathmandu", "Australia/Eucla"),
        ("Asia/Kolkata", "America/St_Johns"),
    ],
)
async def test_running_totals_answer_exactly_like_raw_plays(
    db_session: AsyncSession,
    db_sessionmaker: async_sessionmaker[AsyncSession],
    listener: User,
    zone: str,
    other_zone: str,
) -> None:
    rng = random.Random(zone)
    tracks = [
        await add_track(db_session, f"Song {n}", f"Artist {n % 4}", album=f"Album {n % 3}")
        for n in range(12)
    ]
    episode = await add_track(db_session, "Episode", None, kind="episode", show="Show")
    start = datetime(2025, 10, 20, tzinfo=UTC)  # across the end of summer time
    stored: list[int | None] = []
    for track in [*tracks, episode]:
        instants = sorted(
            {start + timedelta(minutes=rng.randrange(0, 60 * 24 * 20)) for _ in range(25)}
        )
        for at in instants:
            ms = rng.choice([None, 5_000, 29_999, 30_000, 200_000])
            await add_listens(db_session, listener.id, track, at, ms_played=ms)
            stored.append(ms)
    # A day with skips alone: it has rows, but it is no active day.
    await add_listens(
        db_session, listener.id, tracks[0], start - timedelta(days=2), ms_played=5_000
    )
    stored.append(5_000)
    # Moving the user rebuilds their hour totals in the new zone's buckets.
    set_timezone(listener, zone)
    await db_session.flush()
    tz = ZoneInfo(zone)

    # Every row: the per-track totals apply, and the per-hour ones where the zone allows.
    whole = await load_scope(
        db_session, listener.id, days_window(date(2025, 10, 1), date(2025, 11, 30), tz)
    )
    raw = dataclasses.replace(whole, use_totals=False)
    assert whole.whole_history
    assert whole.track_plays != raw.track_plays
    assert whole.tracks != raw.tracks
    assert await queries.music(db_session, whole, 5) == await queries.music(db_session, raw, 5)
    assert await podcasts(db_session, whole, 5) == await podcasts(db_session, raw, 5)
    assert await discoveries(db_session, whole, 5) == await discoveries(db_session, raw, 5)
    sessions = Sessions(db_session, db_sessionmaker, None)
    assert await skips(sessions, whole, 5) == await skips(sessions, raw, 5)
    assert whole.hours != raw.hours
    assert await queries.hourly(db_session, whole) == await queries.hourly(db_session, raw)

    # A few days across the DST change hold only part of the history: per-track figures
    # come from the raw plays either way, so only the per-hour path is compared.
    part = await load_scope(
        db_session, listener.id, days_window(date(2025, 10, 24), date(2025, 10, 28), tz)
    )
    raw = dataclasses.replace(part, use_totals=False)
    assert not part.whole_history
    assert part.track_plays == raw.track_plays
    assert part.tracks == raw.tracks
    assert part.hours != raw.hours
    assert await queries.hourly(db_session, part) == await queries.hourly(db_session, raw)

    # Another zone (a tz override) uses the hour totals when its hours start at the same
    # minute, and the raw plays when they do not; the answers are the same either way.
    other = await load_scope(
        db_session,
        listener.id,
        days_window(date(2025, 10, 1), date(2025, 11, 30), ZoneInfo(other_zone)),
    )
    raw = dataclasses.replace(other, use_totals=False)
    same_minute = zone_hour_start(other_zone) == zone_hour_start(zone)
    assert (other.hours != raw.hours) is same_minute
    if same_minute:  # otherwise both ran the same statement over the raw plays
        assert await queries.hourly(db_session, other) == await queries.hourly(db_session, raw)

    # The totals' own statement agrees with the combined one, on totals and raw plays.
    for scope in (whole, part, other):
        for form in (scope, dataclasses.replace(scope, use_totals=False)):
            alone = await queries.totals(db_session, form)
            assert alone == (await queries.hourly(db_session, form)).totals
            assert alone.active_days > 0

    totals = (await queries.hourly(db_session, whole)).totals
    assert totals.plays == sum(1 for ms in stored if ms is None or ms >= 30_000)
    assert totals.skips == sum(1 for ms in stored if ms is not None and ms < 30_000)
