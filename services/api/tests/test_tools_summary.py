"""The overview tools against an independent computation over the same rows."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.db.models import User
from playlog.testing.factories import add_gap, add_user
from playlog.testing.history import add_listens, add_track

BERLIN = ZoneInfo("Europe/Berlin")
WINDOW = {"start": "2026-03-27", "end": "2026-04-02"}  # summer time starts 29 March


async def _history(
    session: AsyncSession, listener: User
) -> list[tuple[str, str, datetime, int | None]]:
    """(track, artist, played_at, ms_played) of every stored row of ``listener``."""
    rows: list[tuple[str, str, datetime, int | None]] = []
    catalog = {
        "Hoppípolla": "Sigur Rós",
        "Glósóli": "Sigur Rós",
        "Teardrop": "Massive Attack",
        "Angel": "Massive Attack",
        "Windowlicker": "Aphex Twin",
    }
    tracks = {
        name: await add_track(session, name, artist, album=f"{artist} LP")
        for name, artist in catalog.items()
    }
    base = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # 00:30 CET on Sunday 29 March
    plan: list[tuple[str, int, int | None, str]] = [
        ("Hoppípolla", 0, 200_000, "import_zip"),
        ("Hoppípolla", 60, 200_000, "import_zip"),  # 01:30 CET, just before summer time
        ("Hoppípolla", 120, 10_000, "import_zip"),  # a skip at 03:30 CEST
        ("Glósóli", 180, None, "spotify_api"),
        ("Teardrop", 240, 45_000, "import_zip"),
        ("Teardrop", 24 * 60, 29_999, "import_zip"),  # a skip, by one millisecond
        ("Angel", 25 * 60, 30_000, "import_zip"),
        ("Windowlicker", 26 * 60, None, "spotify_api"),
        ("Angel", 3 * 24 * 60, 5_000, "import_zip"),  # 1 April: a day of one skip alone
    ]
    for name, minutes, ms, source in plan:
        at = base + timedelta(minutes=minutes)
        await add_listens(session, listener.id, tracks[name], at, ms_played=ms, source=source)
        rows.append((name, catalog[name], at, ms))
    # Outside the window, and another user's plays: neither may count.
    await add_listens(session, listener.id, tracks["Angel"], datetime(2026, 3, 20, tzinfo=UTC))
    other = await add_user(session, "Other", authorized_days_ago=None, checkpoint=None)
    await add_listens(
        session,
        other.id,
        tracks["Windowlicker"],
        *(base + timedelta(minutes=m) for m in range(0, 600, 30)),
    )
    await add_gap(session, listener.id, base + timedelta(hours=30), base + timedelta(hours=33))
    return rows


def _counted(ms: int | None) -> bool:
    return ms is None or ms >= 30_000


async def test_taste_summary_matches_the_rows(
    client: httpx.AsyncClient, db_session: AsyncSession, listener: User, personal: dict[str, str]
) -> None:
    rows = await _history(db_session, listener)
    response = await client.get("/me/taste-summary", headers=personal, params=WINDOW)
    assert response.status_code == 200, response.text
    body = response.json()
    plays = [row for row in rows if _counted(row[3])]
    assert body["plays"] == len(plays) == 6
    assert body["totals"]["skips"] == len(rows) - len(plays)
    assert body["unique_tracks"] == len({row[0] for row in plays})
    assert body["unique_artists"] == len({row[1] for row in plays})
    by_artist = Counter(row[1] for row in plays)
    assert [(a["name"], a["plays"]) for a in body["top_artists"]] == sorted(
        by_artist.items(), key=lambda item: (-item[1], item[0])
    )
    assert body["top_tracks"][0]["name"] == "Hoppípolla"
    assert body["top_tracks"][0]["plays"] == 2
    assert body["repeat"]["repeat_rate"] == round(1 - 5 / 6, 4)
    # Heatmap in Berlin time, daylight saving included.
    cells = Counter(
        (row[2].astimezone(BERLIN).isoweekday(), row[2].astimezone(BERLIN).hour) for row in plays
    )
    grid = body["heatmap"]["plays"]
    assert sum(map(sum, grid)) == len(plays)
    for (weekday, hour), count in cells.items():
        assert grid[weekday - 1][hour] == count
    assert grid[6][2] == 0  # 02:00-03:00 on 29 March never happened in Berlin
    assert grid[6][4] == 1  # the play ending 02:30 UTC ended at 04:30 CEST
    coverage = body["coverage"]
    assert coverage["rows_by_source"] == {"spotify_api": 2, "import_zip": 7}
    assert coverage["recorded_gaps"] == 1
    # A day with a skip alone has a row but no play, like the totals' active days.
    play_days = {row[2].astimezone(BERLIN).date() for row in plays}
    assert coverage["active_days"] == body["totals"]["active_days"] == len(play_days) == 2
    assert coverage["days_with_rows"] == len({row[2].astimezone(BERLIN).date() for row in rows})
    assert coverage["days_with_rows"] == 3
    assert coverage["longest_silence_days"] == 1
    assert body["audio_profile"] is None
    assert body["clusters"] is None
    # Each API play is estimated as min(duration 200 s, time since the previous play ended):
    # both came an hour after the previous play, so 200 s each.
    estimated_ms = 2 * 200_000
    listened_ms = sum(row[3] or 0 for row in rows)
    assert body["totals"]["estimated_hours"] == round(estimated_ms / 3_600_000, 2)
    assert body["totals"]["listening_hours"] == round((listened_ms + estimated_ms) / 3_600_000, 2)


async def test_top_lists_and_heatmap_routes(
    client: httpx.AsyncClient, db_session: AsyncSession, listener: User, personal: dict[str, str]
) -> None:
    await _history(db_session, listener)
    artists = (
        await client.get("/me/top-artists", headers=personal, params={**WINDOW, "limit": 2})
    ).json()
    assert [(a["name"], a["plays"]) for a in artists["artists"]] == [
        ("Sigur Rós", 3),
        ("Massive Attack", 2),
    ]
    assert artists["artists"][1]["tracks"] == 2
    albums = (await client.get("/me/top-albums", headers=personal, params=WINDOW)).json()
    massive = next(a for a in albums["albums"] if a["album"] == "Massive Attack LP")
    # Listening time counts skips too: 45 s + 29.999 s + 30 s.
    assert massive == {
        "album": "Massive Attack LP",
        "artist": "Massive Attack",
        "plays": 2,
        "hours": round(104_999 / 3_600_000, 2),
        "tracks": 2,
    }
    assert albums["albums"][0]["album"] == "Sigur Rós LP"
    heatmap = (
        await client.get("/me/heatmap", headers=personal, params={**WINDOW, "tz": "UTC"})
    ).json()
    assert heatmap["heatmap"]["tz"] == "UTC"
    assert heatmap["heatmap"]["plays"][5][23] == 1  # Saturday 23:30 UTC
    assert heatmap["window"] == {"start": "2026-03-27", "end": "2026-04-02", "days": 7, "tz": "UTC"}


async def test_coverage_counts_every_gap_but_lists_the_newest_twenty(
    client: httpx.AsyncClient, db_session: AsyncSession, listener: User, personal: dict[str, str]
) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for day in range(25):
        at = start + timedelta(days=day)
        await add_gap(db_session, listener.id, at, at + timedelta(hours=2))
    other = await add_user(db_session, "Other", authorized_days_ago=None, checkpoint=None)
    await add_gap(db_session, other.id, start, start + timedelta(hours=1))
    body = (
        await client.get(
            "/me/coverage", headers=personal, params={"start": "2026-03-01", "end": "2026-03-31"}
        )
    ).json()["coverage"]
    assert body["recorded_gaps"] == 25
    listed = [gap["start"] for gap in body["gaps"]]
    assert len(listed) == 20
    assert listed == sorted(listed, reverse=True)
    assert listed[0].startswith("2026-03-25")
    assert body["gaps"][0]["hours"] == 2.0


async def test_an_artist_s_hours_count_the_tracks_it_was_only_skipped_on(
    client: httpx.AsyncClient, db_session: AsyncSession, listener: User, personal: dict[str, str]
) -> None:
    played = await add_track(db_session, "Played", "Solo", album="Solo LP")
    skipped = await add_track(db_session, "Skipped", "Solo", album="Solo LP")
    never = await add_track(db_session, "Never", "Skipper", album="Skipper LP")
    at = datetime(2026, 3, 30, 12, tzinfo=UTC)
    await add_listens(db_session, listener.id, played, at, ms_played=180_000)
    minutes = (at + timedelta(minutes=m) for m in range(1, 61))
    await add_listens(db_session, listener.id, skipped, *minutes, ms_played=29_000)
    await add_listens(db_session, listener.id, never, at + timedelta(hours=2), ms_played=10_000)
    solo_hours = round((180_000 + 60 * 29_000) / 3_600_000, 2)

    def get(path: str) -> Any:
        return client.get(path, headers=personal, params=WINDOW)

    summary = (await get("/me/taste-summary")).json()
    assert summary["totals"]["listening_hours"] == round(
        (180_000 + 60 * 29_000 + 10_000) / 3_600_000, 2
    )
    # Listed and counted only with a play; timed with every row, like albums and totals.
    assert (summary["plays"], summary["unique_tracks"], summary["unique_artists"]) == (1, 1, 1)
    assert [t["name"] for t in summary["top_tracks"]] == ["Played"]
    artists = (await get("/me/top-artists")).json()["artists"]
    assert [(a["name"], a["plays"], a["hours"], a["tracks"]) for a in artists] == [
        ("Solo", 1, solo_hours, 1)
    ]
    assert summary["top_artists"] == artists
    albums = (await get("/me/top-albums")).json()["albums"]
    assert [(a["album"], a["hours"], a["tracks"]) for a in albums] == [("Solo LP", solo_hours, 1)]
    tracks = (await get("/me/top-tracks")).json()["tracks"]
    assert [(t["name"], t["hours"]) for t in tracks] == [("Played", 0.05)]
    repeat = (await get("/me/repeat-rate")).json()
    assert (repeat["unique_tracks"], repeat["tracks_played_once"]) == (1, 1)
