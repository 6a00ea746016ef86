"""Windows and the two ways of totalling them: raw plays and the running totals."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.db.models import User
from playlog.testing.history import add_listens, add_track
from playlog_api.history import queries
from playlog_api.history.totals import load_scope, whole_hour_offsets
from playlog_api.history.window import WindowArgs, days_window, resolve

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


def test_fractional_offsets_are_detected() -> None:
    start, end = datetime(2020, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    assert whole_hour_offsets(BERLIN, start, end)
    assert not whole_hour_offsets(ZoneInfo("Asia/Kolkata"), start, end)
    assert not whole_hour_offsets(ZoneInfo("Australia/Lord_Howe"), start, end)


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Asia/Kathmandu"])
async def test_running_totals_answer_exactly_like_raw_plays(
    db_session: AsyncSession, listener: User, zone: str
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
    tz = ZoneInfo(zone)
    for first, last in (
        (date(2025, 10, 1), date(2025, 11, 30)),
        (date(2025, 10, 24), date(2025, 10, 28)),
    ):
        scope = await load_scope(db_session, listener.id, days_window(first, last, tz))
        raw = dataclasses.replace(scope, use_totals=False)
        assert await queries.music(db_session, scope, 5) == await queries.music(db_session, raw, 5)
        assert await queries.hourly(db_session, scope) == await queries.hourly(db_session, raw)
    whole = await load_scope(
        db_session, listener.id, days_window(date(2025, 10, 1), date(2025, 11, 30), tz)
    )
    assert whole.whole_history
    totals = (await queries.hourly(db_session, whole)).totals
    assert totals.plays == sum(1 for ms in stored if ms is None or ms >= 30_000)
    assert totals.skips == sum(1 for ms in stored if ms is not None and ms < 30_000)
