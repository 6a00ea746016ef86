"""A generated export, imported, against the tools: every figure checked here is computed
again from the export's raw JSON with the standard library and the counting rules
(identity, repeats, the 30-second rule, music vs spoken word, local days in a zone with
daylight saving), not with any code of the importer or of the analytics."""

from __future__ import annotations

import itertools
import json
import uuid
import zipfile
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from playlog.exports.importer import import_export
from playlog.settings import ImportSettings
from playlog.testing.exports import delete_users_and_their_catalog, generate_export

BERLIN = ZoneInfo("Europe/Berlin")
# The generator's listening ends on 2026-10-31; Berlin leaves summer time on 25 October.
WINDOW = {"start": "2026-08-02", "end": "2026-10-31"}
EARLIER = {"start": "2026-05-04", "end": "2026-08-01"}
EARLY = {"start": "2017-01-01", "end": "2017-03-31"}
ALL_TIME = {"start": "2016-01-01", "end": "2026-10-31"}
YEAR = 2025
LIMIT = 15


@dataclass(frozen=True)
class Row:
    at: datetime
    key: tuple[str, ...]  # what makes a play unique with its time
    kind: str  # music, episode or chapter
    name: str
    artist: str | None  # a track's artist, an episode's show, a chapter's book
    ms: int
    album: str | None = None  # music only

    @property
    def counted(self) -> bool:
        return self.ms >= 30_000


def _row(record: dict[str, Any]) -> Row | None:
    try:
        at = datetime.fromisoformat(record["ts"].replace("Z", "+00:00"))
    except ValueError:
        return None
    ms = record["ms_played"]
    track, artist, album = (
        record["master_metadata_track_name"],
        record["master_metadata_album_artist_name"],
        record["master_metadata_album_album_name"],
    )
    if uri := record["spotify_track_uri"]:
        return Row(at, ("spotify", uri), "music", track, artist, ms, album)
    if uri := record["spotify_episode_uri"]:
        show = record["episode_show_name"]
        return Row(at, ("spotify", uri), "episode", record["episode_name"], show, ms)
    if uri := record["audiobook_chapter_uri"]:
        book = record["audiobook_title"]
        return Row(at, ("spotify", uri), "chapter", record["audiobook_chapter_title"], book, ms)
    if track or artist or album:  # a local file: known by its names
        return Row(at, ("local", track, artist, album), "music", track, artist, ms, album)
    return None


def read_export(path: Path) -> list[Row]:
    """The plays a correct import stores: records with a time and an identity, once each."""
    rows: dict[tuple[Any, ...], Row] = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if "__MACOSX" in name or "Streaming_History_Audio" not in name:
                continue
            for record in json.loads(archive.read(name).decode("utf-8-sig")):
                row = _row(record)
                if row is not None:
                    rows.setdefault((row.at, row.key), row)
    return list(rows.values())


def _edges(window: dict[str, str]) -> tuple[datetime, datetime]:
    """A window's first and last day as instants: Berlin midnights."""
    start, last = (date.fromisoformat(window[edge]) for edge in ("start", "end"))
    return (
        datetime.combine(start, time(), BERLIN),
        datetime.combine(last + timedelta(days=1), time(), BERLIN),
    )


def _in(rows: Iterable[Row], window: dict[str, str]) -> list[Row]:
    start, end = _edges(window)
    return [row for row in rows if start <= row.at < end]


def _hours(ms: int) -> float:
    return round(ms / 3_600_000, 2)


def _top(rows: list[Row], group: Any, limit: int = LIMIT) -> list[tuple[Any, int, float]]:
    """(group, plays, hours) of the groups with a play: most plays, then most time."""
    plays: Counter[Any] = Counter()
    ms: Counter[Any] = Counter()
    for row in rows:
        plays[group(row)] += row.counted
        ms[group(row)] += row.ms
    ranked = sorted((g for g in plays if plays[g]), key=lambda g: (-plays[g], -ms[g], str(g)))
    return [(g, plays[g], _hours(ms[g])) for g in ranked[:limit]]


@dataclass
class Imported:
    user_id: uuid.UUID
    rows: list[Row]
    headers: dict[str, str]
    client: httpx.AsyncClient

    async def ask(self, path: str, **params: Any) -> Any:
        response = await self.client.get(
            f"/history/users/{self.user_id}/{path}", headers=self.headers, params=params
        )
        assert response.status_code == 200, response.text
        return response.json()


@pytest_asyncio.fixture(scope="module")
async def exported_user(
    db_engine: AsyncEngine, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[uuid.UUID, list[Row]]]:
    """A committed user in Berlin with the export imported once for every test here,
    and the plays a correct import stores, read from the same ZIP."""
    path = tmp_path_factory.mktemp("export") / "my_spotify_data.zip"
    generate_export(path, records=30_000, seed=11, family="extended")
    rows = read_export(path)
    async with db_engine.begin() as connection:
        user_id = (
            await connection.execute(
                text(
                    "INSERT INTO users (display_name, timezone)"
                    " VALUES ('exported', 'Europe/Berlin') RETURNING id"
                )
            )
        ).scalar_one()
    try:
        report = await import_export(db_engine, user_id, path, ImportSettings())
        assert report.plays_inserted + report.skips_inserted == len(rows)
        yield user_id, rows
    finally:
        await delete_users_and_their_catalog(db_engine, [user_id])


@pytest.fixture
def imported(
    exported_user: tuple[uuid.UUID, list[Row]], client: httpx.AsyncClient, admin: dict[str, str]
) -> Imported:
    user_id, rows = exported_user
    return Imported(user_id, rows, admin, client)


async def test_the_export_is_what_the_raw_records_say(imported: Imported) -> None:
    rows = imported.rows
    music = [row for row in rows if row.kind == "music"]
    assert len(rows) > 25_000
    assert {row.kind for row in rows} == {"music", "episode", "chapter"}
    body = await imported.ask("taste-summary", **ALL_TIME)
    assert body["plays"] == sum(row.counted for row in rows)
    assert body["totals"]["skips"] == sum(not row.counted for row in rows)
    assert body["totals"]["listening_hours"] == _hours(sum(row.ms for row in rows))
    assert body["unique_tracks"] == len({row.key for row in music if row.counted})
    assert body["unique_artists"] == len({row.artist for row in music if row.counted})


async def test_top_lists_and_heatmap_of_ninety_days_across_a_clock_change(
    imported: Imported,
) -> None:
    window = _in(imported.rows, WINDOW)
    music = [row for row in window if row.kind == "music"]
    assert len(music) > 300

    artists = (await imported.ask("top-artists", limit=LIMIT, **WINDOW))["artists"]
    assert [(a["name"], a["plays"], a["hours"]) for a in artists] == _top(
        music, lambda row: row.artist
    )
    tracks = (await imported.ask("top-tracks", limit=LIMIT, **WINDOW))["tracks"]
    expected = _top(music, lambda row: row.key)
    names = {row.key: (row.name, row.artist) for row in music}
    assert [(t["name"], t["artist"], t["plays"], t["hours"]) for t in tracks] == [
        (*names[key], plays, hours) for key, plays, hours in expected
    ]

    heatmap = (await imported.ask("heatmap", **WINDOW))["heatmap"]
    grid = [[0] * 24 for _ in range(7)]
    for row in window:
        local = row.at.astimezone(BERLIN)
        grid[local.isoweekday() - 1][local.hour] += row.counted
    assert heatmap["plays"] == grid


async def test_skips_podcasts_and_discoveries_of_ninety_days(imported: Imported) -> None:
    window = _in(imported.rows, WINDOW)

    skips = await imported.ask("skips", **WINDOW)
    assert (skips["rows"], skips["plays"], skips["skips"]) == (
        len(window),
        sum(row.counted for row in window),
        sum(not row.counted for row in window),
    )

    podcasts = await imported.ask("podcasts", limit=5, **WINDOW)
    episodes = [row for row in window if row.kind == "episode"]
    assert podcasts["totals"]["plays"] == sum(row.counted for row in episodes)
    assert podcasts["totals"]["hours"] == _hours(sum(row.ms for row in episodes))
    show_ms: Counter[str | None] = Counter()
    for row in episodes:
        show_ms[row.artist] += row.ms
    top_shows = sorted(show_ms.items(), key=lambda item: (-item[1], str(item[0])))[:5]
    assert [(s["show"], s["hours"]) for s in podcasts["shows"]] == [
        (show, _hours(ms)) for show, ms in top_shows
    ]

    # New: music whose first play (skips never count) over all time falls in the window;
    # asked of a window early in the history, where much is new.
    first_of_track: dict[tuple[str, ...], datetime] = {}
    first_of_artist: dict[str | None, datetime] = {}
    for row in sorted(imported.rows, key=lambda row: row.at):
        if row.kind == "music" and row.counted:
            first_of_track.setdefault(row.key, row.at)
            first_of_artist.setdefault(row.artist, row.at)
    start, end = _edges(EARLY)
    new = {key for key, at in first_of_track.items() if start <= at < end}
    early = _in(imported.rows, EARLY)
    counts = (await imported.ask("discoveries", **EARLY))["counts"]
    assert counts["new_tracks"] == len(new) > 50
    assert counts["new_track_plays"] == sum(row.counted for row in early if row.key in new)
    assert counts["new_artists"] == sum(start <= at < end for at in first_of_artist.values())
    assert counts["window_plays"] == sum(row.counted for row in early)


async def test_compare_periods_side_by_side(imported: Imported) -> None:
    body = await imported.ask(
        "compare-periods",
        a_start=WINDOW["start"],
        a_end=WINDOW["end"],
        b_start=EARLIER["start"],
        b_end=EARLIER["end"],
        limit=5,
    )
    for side, window in (("a", WINDOW), ("b", EARLIER)):
        rows = _in(imported.rows, window)
        period = body[side]
        assert period["plays"] == sum(row.counted for row in rows)
        assert period["skips"] == sum(not row.counted for row in rows)
        music = [row for row in rows if row.kind == "music"]
        assert [a["name"] for a in period["top_artists"]] == [
            name for name, _, _ in _top(music, lambda row: row.artist, 5)
        ]
    assert body["change"]["plays_delta"] == body["a"]["plays"] - body["b"]["plays"]


def _local_days(rows: Iterable[Row]) -> dict[date, list[Row]]:
    days: dict[date, list[Row]] = {}
    for row in rows:
        days.setdefault(row.at.astimezone(BERLIN).date(), []).append(row)
    return days


async def test_a_year_in_review(imported: Imported) -> None:
    rows = _in(imported.rows, {"start": f"{YEAR}-01-01", "end": f"{YEAR}-12-31"})
    music = [row for row in rows if row.kind == "music"]
    body = await imported.ask("year-in-review", year=YEAR, limit=5)
    assert (body["plays"], body["skips"], body["listening_hours"]) == (
        sum(row.counted for row in rows),
        sum(not row.counted for row in rows),
        _hours(sum(row.ms for row in rows)),
    )
    assert body["unique_tracks"] == len({row.key for row in music if row.counted})
    assert body["unique_artists"] == len({row.artist for row in music if row.counted})
    albums = _top([row for row in music if row.album], lambda row: (row.album, row.artist), 5)
    assert [(a["album"], a["artist"], a["plays"], a["hours"]) for a in body["top_albums"]] == [
        (*album, plays, hours) for album, plays, hours in albums
    ]

    days = _local_days(rows)
    months = [
        (month, sum(r.counted for d, day in days.items() if d.month == month for r in day))
        for month in range(1, 13)
    ]
    assert [(m["month"], m["plays"]) for m in body["months"]] == months
    assert [m["hours"] for m in body["months"]] == [
        _hours(sum(r.ms for d, day in days.items() if d.month == month for r in day))
        for month in range(1, 13)
    ]
    # Busiest: most plays, then most time, then the earlier day.
    active = sorted(d for d, day in days.items() if any(r.counted for r in day))
    assert body["active_days"] == len(active)
    busiest = min(
        active,
        key=lambda d: (-sum(r.counted for r in days[d]), -sum(r.ms for r in days[d]), d),
    )
    assert body["busiest_day"] == {
        "date": str(busiest),
        "plays": sum(r.counted for r in days[busiest]),
        "hours": _hours(sum(r.ms for r in days[busiest])),
    }
    # Longest streak of active days; the earliest of equals.
    runs: list[list[date]] = []
    for d in active:
        if runs and d - runs[-1][-1] == timedelta(days=1):
            runs[-1].append(d)
        else:
            runs.append([d])
    longest = max(runs, key=len)
    assert body["longest_streak"] == {
        "days": len(longest),
        "start": str(longest[0]),
        "end": str(longest[-1]),
    }


async def test_the_repeat_rate_of_ninety_days(imported: Imported) -> None:
    window = _in(imported.rows, WINDOW)
    plays = Counter(row.key for row in window if row.kind == "music" and row.counted)
    body = await imported.ask("repeat-rate", limit=5, **WINDOW)
    total = sum(plays.values())
    assert (body["plays"], body["unique_tracks"]) == (total, len(plays))
    assert body["repeat_rate"] == round(1 - len(plays) / total, 4)
    assert body["tracks_played_once"] == sum(n == 1 for n in plays.values())
    assert body["tracks_played_10_plus"] == sum(n >= 10 for n in plays.values())
    assert body["most_plays_of_one_track"] == max(plays.values())
    # On repeat: a music play right after a play of the same track, among the window's
    # plays of every kind in order (skips are no listen: they neither count nor break it).
    listened = sorted((row for row in window if row.counted), key=lambda row: row.at)
    repeats = sum(
        1
        for before, row in itertools.pairwise(listened)
        if row.kind == "music" and row.key == before.key
    )
    assert body["consecutive_repeats"] == repeats > 0


async def test_coverage_of_ninety_days_and_a_search_over_all_time(imported: Imported) -> None:
    window = _in(imported.rows, WINDOW)
    days = _local_days(window)
    body = (await imported.ask("coverage", **WINDOW))["coverage"]
    with_rows = sorted(days)
    assert (body["days"], body["days_with_rows"], body["active_days"]) == (
        (date.fromisoformat(WINDOW["end"]) - date.fromisoformat(WINDOW["start"])).days + 1,
        len(with_rows),
        sum(any(row.counted for row in day) for day in days.values()),
    )
    assert body["longest_silence_days"] == max(
        (after - before).days - 1 for before, after in itertools.pairwise(with_rows)
    )
    assert body["rows_by_source"] == {"spotify_api": 0, "import_zip": len(window)}
    first, last = min(row.at for row in window), max(row.at for row in window)
    assert (body["first_played_at"], body["last_played_at"]) == (
        first.isoformat().replace("+00:00", "Z"),
        last.isoformat().replace("+00:00", "Z"),
    )

    # Music whose primary artist's name contains the text, any case.
    query = "okafor"
    matching = [
        row
        for row in imported.rows
        if row.kind == "music" and row.artist and query in row.artist.casefold()
    ]
    found = await imported.ask("search", query=query, field="artist", days=36500)
    assert found["totals"] == {
        "plays": sum(row.counted for row in matching),
        "skips": sum(not row.counted for row in matching),
        "hours": _hours(sum(row.ms for row in matching)),
        "tracks": len({row.key for row in matching}),
    }
    assert found["totals"]["plays"] > 10


async def test_the_latest_plays_page_by_page(imported: Imported) -> None:
    def expected(row: Row) -> tuple[Any, ...]:
        # Episodes and chapters have no artist: their show or book stands as the album.
        if row.kind == "music":
            return (row.at, "track", row.name, row.artist, row.album, row.ms)
        kind = "episode" if row.kind == "episode" else "audiobook"
        return (row.at, kind, row.name, None, row.artist, row.ms)

    for include_skips in (False, True):
        listed: list[tuple[Any, ...]] = []
        params: dict[str, Any] = {"limit": 40, "include_skips": include_skips}
        for _ in range(5):
            body = await imported.ask("recent-plays", **params)
            for item in body["plays"]:
                assert item["skipped"] is (item["ms_played"] < 30_000)
                at = datetime.fromisoformat(item["played_at"])
                listed.append(
                    (
                        at,
                        item["kind"],
                        item["name"],
                        item["artist"],
                        item["album"],
                        item["ms_played"],
                    )
                )
            params["before"] = body["next_before"]
        # Every row at or after the oldest instant listed, newest first (the rows of one
        # instant in any order).
        oldest = listed[-1][0]
        rows = [
            expected(row)
            for row in imported.rows
            if row.at >= oldest and (include_skips or row.counted)
        ]
        assert len(listed) >= 200
        assert {item[1] for item in listed} == {"track", "episode", "audiobook"}
        assert sorted(listed, key=str) == sorted(rows, key=str)
        assert [item[0] for item in listed] == sorted((item[0] for item in rows), reverse=True)
