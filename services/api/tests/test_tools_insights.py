"""history_discoveries, history_skips, history_podcasts and history_year_in_review.

Every number a tool returns is compared with a plain-Python computation over the rows the
test inserted: the counting rule (plays ≥ 30 s or unknown, shorter rows are skips), local
days and hours in Europe/Berlin, primary artists grouped by name. The history holds skips,
API rows without ms_played, podcast episodes and audiobook chapters, a track heard before
the window, the spring DST change and a New Year's midnight that is 23:00 UTC, plus
another user whose plays must never show.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.db.models import Play, Track, User
from playlog.history.identity import local_artist_id
from playlog.testing.factories import add_user
from playlog.testing.history import add_listens, add_track

BERLIN = ZoneInfo("Europe/Berlin")
WINDOW = {"start": "2025-03-01", "end": "2025-04-30"}
FIRST, LAST = date(2025, 3, 1), date(2025, 4, 30)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Row:
    track: Track
    artist: str | None
    artist_id: str | None
    at: datetime
    ms: int | None
    reason: str | None = None
    skipped: bool | None = None
    estimate: int | None = None

    @property
    def counted(self) -> bool:
        return self.ms is None or self.ms >= 30_000

    @property
    def listening(self) -> int:
        return self.ms if self.ms is not None else (self.estimate or 0)

    def local(self, tz: ZoneInfo = BERLIN) -> datetime:
        return self.at.astimezone(tz)


@dataclass
class History:
    listener: User
    other: User
    rows: list[Row]
    tracks: dict[str, Track] = field(default_factory=dict)
    artists: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    def window(self, first: date, last: date, tz: ZoneInfo = BERLIN) -> list[Row]:
        return [r for r in self.rows if first <= r.local(tz).date() <= last]


# (key, name, artist, album, kind, show, duration_ms, artist_id)
TRACKS: list[tuple[str, str, str | None, str | None, str, str | None, int, str | None]] = [
    ("a1", "Aurora", "Alpha", "First Light", "track", None, 200_000, None),
    ("a2", "Afterglow", "Alpha", "First Light", "track", None, 200_000, None),
    ("b1", "Borealis", "Beta", "North", "track", None, 200_000, None),
    # Same artist name under a Spotify id: one artist, credited by the Spotify id.
    ("b2", "Blizzard", "Beta", "North", "track", None, 200_000, "qBetaSpotifyArtistId00"),
    ("c1", "Cascade", "Gamma", "Falls", "track", None, 200_000, None),
    ("c2", "Current", "Gamma", "Falls", "track", None, 200_000, None),
    ("d1", "Drift", "Delta", None, "track", None, 200_000, None),
    ("e1", "Ember", "Echo", "Coals", "track", None, 200_000, None),
    ("f1", "Fathom", "Foxtrot", "Depths", "track", None, 200_000, None),
    ("h1", "Harbor", "Hotel", "Docks", "track", None, 200_000, None),
    ("o1", "Outsider", "Omega", "Elsewhere", "track", None, 200_000, None),
    ("t1", "Tech One", None, None, "episode", "Tech Talk", 3_600_000, None),
    ("t2", "Tech Two", None, None, "episode", "Tech Talk", 3_600_000, None),
    ("r1", "Rome", None, None, "episode", "History Hour", 2_700_000, None),
    ("n1", "Chapter 1", None, None, "audiobook", "The Novel", 1_800_000, None),
    ("n2", "Chapter 2", None, None, "audiobook", "The Novel", 1_800_000, None),
]

# (track, UTC end of playback, ms_played, reason_end, skipped); ms None = an API row.
MINE: list[tuple[str, str, int | None, str | None, bool | None]] = [
    ("c1", "2024-06-01T10:00:00", 180_000, "trackdone", False),
    # 23:59:59 in Berlin on Dec 31: still 2024. Half an hour later it is 2025 in Berlin.
    ("e1", "2024-12-31T22:59:59", 200_000, "trackdone", False),
    ("h1", "2024-12-31T23:30:00", 200_000, "trackdone", False),
    # A skip before the window does not make Delta heard before it.
    ("d1", "2025-02-10T12:00:00", 10_000, "fwdbtn", True),
    # The second before the window (Feb 28, 23:59:59 in Berlin) and its first instant.
    ("e1", "2025-02-28T22:59:59", 200_000, "trackdone", False),
    ("b1", "2025-02-28T23:00:00", 200_000, "trackdone", False),
    ("b1", "2025-03-03T18:00:00", 200_000, "trackdone", False),
    ("b1", "2025-03-10T18:00:00", 5_000, "fwdbtn", True),
    ("b2", "2025-03-04T09:00:00", 150_000, "trackdone", False),
    ("b2", "2025-03-05T09:00:00", 20_000, "fwdbtn", True),
    ("b2", "2025-03-06T09:00:00", 25_000, None, None),
    # Spotify says skipped, but 40 s is a play by the 30-second rule.
    ("b2", "2025-03-07T09:00:00", 40_000, "fwdbtn", True),
    ("a1", "2025-03-08T20:00:00", 190_000, "trackdone", False),
    ("a1", "2025-03-09T20:00:00", 190_000, "trackdone", False),
    ("a1", "2025-03-10T20:00:00", 190_000, "trackdone", False),
    ("a1", "2025-03-11T20:00:00", 3_000, "backbtn", False),
    ("a2", "2025-03-12T20:00:00", 180_000, "trackdone", False),
    ("c1", "2025-03-14T12:00:00", 180_000, "trackdone", False),
    ("c1", "2025-03-15T12:00:00", 1_000, "fwdbtn", True),
    ("c1", "2025-03-16T12:00:00", 2_000, "fwdbtn", True),
    ("c2", "2025-03-20T12:00:00", 180_000, "trackdone", False),
    ("c2", "2025-03-21T12:00:00", 180_000, "trackdone", False),
    ("d1", "2025-03-25T12:00:00", 190_000, "trackdone", False),
    # Around the spring change (2025-03-30 01:00 UTC): 00:30, 01:30 CET, then 03:30 CEST.
    ("a1", "2025-03-29T23:30:00", 4_000, "fwdbtn", True),
    ("a2", "2025-03-30T00:30:00", 180_000, "trackdone", False),
    ("b1", "2025-03-30T01:30:00", 4_000, "fwdbtn", True),
    # More rows than the busiest day, but mostly skips.
    ("c2", "2025-03-30T10:00:00", 5_000, "fwdbtn", True),
    ("f1", "2025-04-02T10:00:00", None, None, None),
    ("f1", "2025-04-02T12:00:00", None, None, None),
    # An episode with enough rows and a skip: still not in the music lists.
    ("t1", "2025-04-04T08:00:00", 15_000, "fwdbtn", True),
    ("t1", "2025-04-05T08:00:00", 3_000_000, "trackdone", False),
    ("t1", "2025-04-06T08:00:00", 600_000, "endplay", False),
    ("t2", "2025-04-07T08:00:00", 20_000, "fwdbtn", True),
    ("r1", "2025-04-08T08:00:00", 2_400_000, "endplay", False),
    ("r1", "2025-04-09T08:00:00", None, None, None),
    ("t2", "2025-04-10T08:00:00", 60_000, "endplay", False),
    ("n1", "2025-04-12T20:00:00", 1_200_000, "endplay", False),
    ("n2", "2025-04-13T20:00:00", 900_000, "endplay", False),
    ("n2", "2025-04-14T20:00:00", 10_000, "fwdbtn", True),
    # Two rows, one skipped: too few to rank among the most skipped.
    ("h1", "2025-04-20T10:00:00", 200_000, "trackdone", False),
    ("h1", "2025-04-21T10:00:00", 8_000, "fwdbtn", True),
    ("a1", "2025-05-02T10:00:00", 190_000, "trackdone", False),
    # Five days in a row (a longer streak than March's four), the busiest on July 3.
    *[("a1", f"2025-07-0{d}T10:00:00", 190_000, "trackdone", False) for d in range(1, 6)],
    ("b2", "2025-07-03T11:00:00", 150_000, "trackdone", False),
    ("c2", "2025-07-03T12:00:00", 150_000, "trackdone", False),
    ("a1", "2025-12-31T22:59:00", 190_000, "trackdone", False),
    # Midnight in Berlin: the first second of 2026.
    ("a1", "2025-12-31T23:00:00", 190_000, "trackdone", False),
]

# Another user: in the window, before it (a1 heard "early") and on the busiest day.
THEIRS: list[tuple[str, str, int | None, str | None, bool | None]] = [
    ("a1", "2024-03-01T10:00:00", 190_000, "trackdone", False),
    ("o1", "2025-03-08T20:00:00", 190_000, "trackdone", False),
    ("b2", "2025-03-20T15:00:00", 150_000, "trackdone", False),
    ("o1", "2025-03-09T20:00:00", 2_000, "fwdbtn", True),
    ("o1", "2025-03-09T21:00:00", 2_000, "fwdbtn", True),
    ("o1", "2025-03-09T22:00:00", 2_000, "fwdbtn", True),
    ("t1", "2025-04-05T09:00:00", 3_000_000, "trackdone", False),
    ("n1", "2025-04-12T21:00:00", 1_200_000, "endplay", False),
    *[("o1", f"2025-07-03T1{h}:00:00", 190_000, "trackdone", False) for h in range(6)],
]


def _estimate(row: Row, earlier: list[datetime]) -> int | None:
    # The insert trigger's rule: the track's duration, cut to the time since the user's
    # previous play ended.
    duration = row.track.duration_ms
    if duration is None:
        return None
    before = [at for at in earlier if at < row.at]
    if not before:
        return duration
    return min(duration, math.floor((row.at - max(before)).total_seconds() * 1000))


async def _insert(
    session: AsyncSession, user: User, tracks: dict[str, Track], specs: Iterable[Any]
) -> list[Play]:
    plays = [
        Play(
            user_id=user.id,
            played_at=utc(at),
            track_id=tracks[key].track_id,
            ms_played=ms,
            source="spotify_api" if ms is None else "import_zip",
            source_format=None if ms is None else "extended",
            reason_end=reason,
            skipped=skipped,
        )
        for key, at, ms, reason, skipped in sorted(specs, key=lambda spec: spec[1])
    ]
    session.add_all(plays)
    await session.flush()
    return plays


@pytest_asyncio.fixture
async def history(db_session: AsyncSession, listener: User) -> History:
    other = await add_user(db_session, "Other", authorized_days_ago=None, checkpoint=None)
    made = History(listener=listener, other=other, rows=[])
    for key, name, artist, album, kind, show, duration, artist_id in TRACKS:
        made.tracks[key] = await add_track(
            db_session,
            name,
            artist,
            album=album,
            kind=kind,
            show=show,
            duration_ms=duration,
            track_id=f"{key}{'x' * 20}",
            artist_id=artist_id,
        )
        # add_track's id for an artist given by name only.
        made.artists[key] = (artist, (artist_id or local_artist_id(artist)) if artist else None)
    await _insert(db_session, other, made.tracks, THEIRS)
    plays = await _insert(db_session, listener, made.tracks, MINE)
    key_of = {track.track_id: key for key, track in made.tracks.items()}
    for play in plays:
        key = key_of[play.track_id]
        made.rows.append(
            Row(
                made.tracks[key],
                *made.artists[key],
                play.played_at,
                play.ms_played,
                play.reason_end,
                play.skipped,
            )
        )
    instants = [row.at for row in made.rows]
    for row in made.rows:
        if row.ms is None:
            row.estimate = _estimate(row, instants)
    return made


def hours(ms: int) -> float:
    return round(ms / 3_600_000, 2)


def rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def group(rows: Iterable[Row], key: Callable[[Row], Any]) -> dict[Any, list[Row]]:
    groups: dict[Any, list[Row]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return groups


def plays(rows: Iterable[Row]) -> int:
    return sum(1 for r in rows if r.counted)


def skips(rows: Iterable[Row]) -> int:
    return sum(1 for r in rows if not r.counted)


def listening(rows: Iterable[Row]) -> int:
    return sum(r.listening for r in rows)


def artist_id(rows: Iterable[Row]) -> str:
    """The id an artist list shows: the smallest Spotify id, else the smallest derived one."""
    known = {r.artist_id for r in rows if r.artist_id is not None}
    spotify = sorted(i for i in known if not i.startswith("local:"))
    return spotify[0] if spotify else sorted(known)[0]


def music(rows: Iterable[Row]) -> list[Row]:
    return [r for r in rows if r.track.kind == "track"]


# --- history_discoveries -------------------------------------------------------------


def expected_discoveries(h: History, first: date, last: date, limit: int) -> dict[str, Any]:
    first_heard: dict[str, datetime] = {}
    for r in h.rows:
        if r.counted:
            key = r.track.track_id
            first_heard[key] = min(first_heard.get(key, r.at), r.at)

    def inside(instant: datetime) -> bool:
        return first <= instant.astimezone(BERLIN).date() <= last

    window = h.window(first, last)
    by_track = group(window, lambda r: r.track.track_id)
    new = [
        rows
        for track_id, rows in by_track.items()
        if rows[0].track.kind == "track" and track_id in first_heard
        if inside(first_heard[track_id])
    ]
    artist_first: dict[str, datetime] = {}
    for r in music(h.rows):
        if r.counted and r.artist is not None:
            artist_first[r.artist] = min(artist_first.get(r.artist, r.at), r.at)
    new_names = {name for name, instant in artist_first.items() if inside(instant)}
    new_artist_rows = group(
        [r for rows in new for r in rows if r.artist in new_names], lambda r: r.artist
    )
    total = plays(window)
    track_items: list[dict[str, Any]] = sorted(
        (
            {
                "track_id": rows[0].track.track_id,
                "name": rows[0].track.name,
                "artist": rows[0].artist,
                "album": rows[0].track.album_name,
                "plays": plays(rows),
                "hours": hours(listening(rows)),
                "first_played_at": first_heard[rows[0].track.track_id],
                "_ms": listening(rows),
            }
            for rows in new
        ),
        key=lambda i: (-i["plays"], -i["_ms"], i["name"], i["track_id"]),
    )
    artist_items: list[dict[str, Any]] = []
    for name, rows in new_artist_rows.items():
        firsts = sorted(
            {(first_heard[r.track.track_id], r.track.name, r.track.track_id) for r in rows}
        )
        artist_items.append(
            {
                "artist_id": artist_id(rows),
                "name": name,
                "plays": plays(rows),
                "hours": hours(listening(rows)),
                "tracks": len({r.track.track_id for r in rows}),
                "first_played_at": firsts[0][0],
                "first_track_id": firsts[0][2],
                "first_track": firsts[0][1],
                "_ms": listening(rows),
            }
        )
    artist_items.sort(key=lambda i: (-i["plays"], -i["_ms"], i["name"]))
    new_track_plays = sum(i["plays"] for i in track_items)
    new_artist_plays = sum(i["plays"] for i in artist_items)
    return {
        "counts": {
            "window_plays": total,
            "new_tracks": len(track_items),
            "new_track_plays": new_track_plays,
            "new_track_share": rate(new_track_plays, total),
            "new_artists": len(artist_items),
            "new_artist_plays": new_artist_plays,
            "new_artist_share": rate(new_artist_plays, total),
        },
        "artists": [_public(i) for i in artist_items[:limit]],
        "tracks": [_public(i) for i in track_items[:limit]],
    }


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("_")}


def _parsed(items: list[dict[str, Any]], *fields: str) -> list[dict[str, Any]]:
    return [{**i, **{f: at(i[f]) for f in fields if i[f] is not None}} for i in items]


async def test_discoveries_count_only_music_first_heard_in_the_window(
    client: httpx.AsyncClient, history: History, personal: dict[str, str]
) -> None:
    response = await client.get("/me/discoveries", headers=personal, params=WINDOW)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = expected_discoveries(history, FIRST, LAST, 10)
    assert body["window"] == {
        "start": "2025-03-01",
        "end": "2025-04-30",
        "days": 61,
        "tz": "Europe/Berlin",
    }
    assert body["counts"] == expected["counts"]
    assert _parsed(body["artists"], "first_played_at") == expected["artists"]
    assert _parsed(body["tracks"], "first_played_at") == expected["tracks"]

    names = {t["name"] for t in body["tracks"]}
    # Cascade was heard in 2024; Current is new but Gamma is not; Drift's earlier skip
    # does not count; API plays count; Outsider is someone else's; episodes are not music.
    assert "Cascade" not in names
    assert {"Current", "Drift", "Fathom", "Borealis"} <= names
    assert not names & {"Outsider", "Tech One", "Ember"}
    artists = {a["name"]: a for a in body["artists"]}
    assert set(artists) == {"Alpha", "Beta", "Delta", "Foxtrot"}
    assert artists["Beta"]["artist_id"] == "qBetaSpotifyArtistId00"
    assert artists["Beta"]["first_track"] == "Borealis"
    assert artists["Beta"]["first_played_at"] == "2025-02-28T23:00:00Z"

    limited = await client.post(
        "/mcp/call",
        headers=personal,
        json={"tool": "history_discoveries", "args": {**WINDOW, "limit": 2}},
    )
    result = limited.json()["result"]
    short = expected_discoveries(history, FIRST, LAST, 2)
    assert _parsed(result["artists"], "first_played_at") == short["artists"]
    assert _parsed(result["tracks"], "first_played_at") == short["tracks"]


async def test_discoveries_over_all_time_find_every_track_once(
    client: httpx.AsyncClient, history: History, personal: dict[str, str]
) -> None:
    body = (await client.get("/me/discoveries", headers=personal, params={"days": 36500})).json()
    today = datetime.now(BERLIN).date()
    expected = expected_discoveries(history, date(2000, 1, 1), today, 10)
    assert body["counts"] == expected["counts"]
    assert _parsed(body["artists"], "first_played_at") == expected["artists"]
    assert _parsed(body["tracks"], "first_played_at") == expected["tracks"]
    assert body["counts"]["new_artists"] == 7  # every artist the listener played


# --- history_skips -------------------------------------------------------------------


def expected_skips(h: History, first: date, last: date, tz: ZoneInfo, limit: int) -> dict[str, Any]:
    window = h.window(first, last, tz)
    songs = music(window)

    def ranked(
        groups: dict[Any, list[Row]], item: Callable[[list[Row]], dict[str, Any]]
    ) -> list[Any]:
        items = [item(rows) for rows in groups.values() if len(rows) >= 3 and skips(rows)]
        items.sort(
            key=lambda i: (-i["skips"], -i["skips"] / i["rows"], i["name"], i.get("track_id", ""))
        )
        return [_public(i) for i in items[:limit]]

    reasons: dict[str, int] = defaultdict(int)
    for r in window:
        if not r.counted:
            reasons[r.reason or "unknown"] += 1
    by_hour = group(window, lambda r: r.local(tz).hour)
    return {
        "rows": len(window),
        "plays": plays(window),
        "skips": skips(window),
        "skip_rate": rate(skips(window), len(window)),
        "spotify_skipped": {
            "rows_with_flag": sum(1 for r in window if r.skipped is not None),
            "skipped": sum(1 for r in window if r.skipped),
            "skipped_under_30s": sum(1 for r in window if r.skipped and not r.counted),
        },
        "tracks": ranked(
            group(songs, lambda r: r.track.track_id),
            lambda rows: {
                "track_id": rows[0].track.track_id,
                "name": rows[0].track.name,
                "artist": rows[0].artist,
                "rows": len(rows),
                "skips": skips(rows),
                "skip_rate": rate(skips(rows), len(rows)),
            },
        ),
        "artists": ranked(
            group([r for r in songs if r.artist], lambda r: r.artist),
            lambda rows: {
                "artist_id": artist_id(rows),
                "name": rows[0].artist,
                "rows": len(rows),
                "skips": skips(rows),
                "skip_rate": rate(skips(rows), len(rows)),
                "tracks": len({r.track.track_id for r in rows}),
            },
        ),
        "reasons": [
            {"reason_end": reason, "skips": n}
            for reason, n in sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
        ],
        "by_hour": [
            {
                "hour": hour,
                "rows": len(by_hour.get(hour, [])),
                "skips": skips(by_hour.get(hour, [])),
                "skip_rate": rate(skips(by_hour[hour]), len(by_hour[hour]))
                if by_hour.get(hour)
                else None,
            }
            for hour in range(24)
        ],
    }


async def test_skips_follow_the_30_second_rule_by_local_hour(
    client: httpx.AsyncClient, history: History, personal: dict[str, str]
) -> None:
    response = await client.get("/me/skips", headers=personal, params=WINDOW)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = expected_skips(history, FIRST, LAST, BERLIN, 10)
    assert {k: v for k, v in body.items() if k != "window"} == expected
    # The skip at 01:30 UTC on the night of the change is 03:30 CEST: nothing lands in
    # hour 2, which did not exist that night (a fixed +1 offset would put it there).
    assert body["by_hour"][2] == {"hour": 2, "rows": 0, "skips": 0, "skip_rate": None}
    assert body["by_hour"][3]["skips"] == 1
    # Omega's three skips are the other user's; Delta has a skip only before the window.
    assert {a["name"] for a in body["artists"]} == {"Alpha", "Beta", "Gamma"}
    # Four tracks have two skips each: the higher rate ranks first (2 of 3 rows); then one.
    assert [t["name"] for t in body["tracks"]] == [
        "Cascade",
        "Blizzard",
        "Borealis",
        "Aurora",
        "Current",
    ]
    assert body["spotify_skipped"]["skipped"] > body["spotify_skipped"]["skipped_under_30s"]

    one = await client.get("/me/skips", headers=personal, params={**WINDOW, "limit": 1})
    assert one.json()["tracks"] == expected["tracks"][:1]
    assert one.json()["artists"] == expected["artists"][:1]


async def test_skips_in_a_half_hour_zone(
    client: httpx.AsyncClient, history: History, personal: dict[str, str]
) -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    body = (
        await client.get("/me/skips", headers=personal, params={**WINDOW, "tz": "Asia/Kolkata"})
    ).json()
    expected = expected_skips(history, FIRST, LAST, kolkata, 10)
    assert {k: v for k, v in body.items() if k != "window"} == expected
    assert body["window"]["tz"] == "Asia/Kolkata"


# --- history_podcasts ----------------------------------------------------------------


def expected_spoken(rows: list[Row], limit: int) -> dict[str, Any]:
    by_track = group(rows, lambda r: r.track.track_id)
    by_show = group(rows, lambda r: r.track.show_name)
    shows = [
        {
            "show": show,
            "plays": plays(items),
            "hours": hours(listening(items)),
            "items": len({r.track.track_id for r in items if r.counted}),
            "last_played_at": max(r.at for r in items if r.counted),
            "_ms": listening(items),
        }
        for show, items in by_show.items()
        if plays(items)
    ]
    shows.sort(key=lambda i: (-i["_ms"], -i["plays"], i["show"]))
    episodes: list[dict[str, Any]] = [
        {
            "track_id": items[0].track.track_id,
            "name": items[0].track.name,
            "show": items[0].track.show_name,
            "plays": plays(items),
            "hours": hours(listening(items)),
            "last_played_at": max(r.at for r in items if r.counted),
            "_ms": listening(items),
        }
        for items in by_track.values()
        if plays(items)
    ]
    episodes.sort(key=lambda i: (-i["_ms"], -i["plays"], i["name"], i["track_id"]))
    return {
        "plays": plays(rows),
        "hours": hours(listening(rows)),
        "shows": len(shows),
        "items": len(episodes),
        "top_shows": [_public(i) for i in shows[:limit]],
        "top_items": [_public(i) for i in episodes[:limit]],
    }


async def test_podcasts_by_listening_hours_and_audiobooks_apart(
    client: httpx.AsyncClient, history: History, personal: dict[str, str]
) -> None:
    response = await client.post(
        "/mcp/call", headers=personal, json={"tool": "history.podcasts", "args": WINDOW}
    )
    assert response.status_code == 200, response.text
    body = response.json()["result"]
    window = history.window(FIRST, LAST)
    pods = expected_spoken([r for r in window if r.track.kind == "episode"], 10)
    books = expected_spoken([r for r in window if r.track.kind == "audiobook"], 10)
    assert body["totals"] == {
        "plays": pods["plays"],
        "hours": pods["hours"],
        "shows": pods["shows"],
        "episodes": pods["items"],
    }
    assert _parsed(body["shows"], "last_played_at") == [
        {**{k: v for k, v in s.items() if k != "items"}, "episodes": s["items"]}
        for s in pods["top_shows"]
    ]
    assert _parsed(body["episodes"], "last_played_at") == pods["top_items"]
    audiobooks = body["audiobooks"]
    assert {k: audiobooks[k] for k in ("plays", "hours", "books", "chapters")} == {
        "plays": books["plays"],
        "hours": books["hours"],
        "books": books["shows"],
        "chapters": books["items"],
    }
    assert _parsed(audiobooks["top_books"], "last_played_at") == [
        {
            "book": s["show"],
            "plays": s["plays"],
            "hours": s["hours"],
            "chapters": s["items"],
            "last_played_at": s["last_played_at"],
        }
        for s in books["top_shows"]
    ]
    # History Hour has fewer plays than Tech Talk but more hours (one of them an API
    # row, estimated at the episode's duration), so it leads.
    assert [s["show"] for s in body["shows"]] == ["History Hour", "Tech Talk"]
    assert body["shows"][1]["plays"] > body["shows"][0]["plays"]
    assert audiobooks["top_books"][0]["book"] == "The Novel"

    one = (await client.get("/me/podcasts", headers=personal, params={**WINDOW, "limit": 1})).json()
    assert [s["show"] for s in one["shows"]] == ["History Hour"]
    assert _parsed(one["episodes"], "last_played_at") == pods["top_items"][:1]


# --- history_year_in_review ----------------------------------------------------------


def expected_year(h: History, year: int, limit: int, tz: ZoneInfo = BERLIN) -> dict[str, Any]:
    rows = h.window(date(year, 1, 1), date(year, 12, 31), tz)
    songs = music(rows)
    by_track = group(songs, lambda r: r.track.track_id)
    played = {k: v for k, v in by_track.items() if plays(v)}

    def artist_item(items: list[Row]) -> dict[str, Any]:
        return {
            "artist_id": artist_id(items),
            "name": items[0].artist,
            "plays": plays(items),
            "hours": hours(listening(items)),
            "tracks": len({r.track.track_id for r in items if r.counted}),
            "_ms": listening(items),
        }

    # Artists are summed over their tracks with a play in the year (skip-only tracks left
    # out, as in the taste summary's list).
    played_rows = [r for v in played.values() for r in v if r.artist]
    artists = [artist_item(v) for v in group(played_rows, lambda r: r.artist).values()]
    artists = sorted(
        (a for a in artists if a["plays"]), key=lambda a: (-a["plays"], -a["_ms"], a["name"])
    )
    tracks = sorted(
        (
            {
                "track_id": k,
                "name": v[0].track.name,
                "artist": v[0].artist,
                "album": v[0].track.album_name,
                "plays": plays(v),
                "hours": hours(listening(v)),
                "_ms": listening(v),
            }
            for k, v in played.items()
        ),
        key=lambda t: (-t["plays"], -t["_ms"], t["name"], t["track_id"]),
    )
    albums = []
    for (album, artist), items in group(
        [r for r in songs if r.track.album_name], lambda r: (r.track.album_name, r.artist)
    ).items():
        if plays(items):
            albums.append(
                {
                    "album": album,
                    "artist": artist,
                    "plays": plays(items),
                    "hours": hours(listening(items)),
                    "tracks": len({r.track.track_id for r in items if r.counted}),
                    "_ms": listening(items),
                }
            )
    albums.sort(key=lambda a: (-a["plays"], -a["_ms"], a["album"], a["artist"]))
    days = group(rows, lambda r: r.local(tz).date())
    active = sorted(d for d, items in days.items() if plays(items))
    busiest = min(active, key=lambda d: (-plays(days[d]), -listening(days[d]), d), default=None)
    streak: dict[str, Any] | None = None
    run: list[date] = []
    for day in active:
        run = [*run, day] if run and run[-1] + timedelta(days=1) == day else [day]
        if streak is None or len(run) > streak["days"]:
            streak = {"days": len(run), "start": run[0].isoformat(), "end": run[-1].isoformat()}
    months = group(rows, lambda r: r.local(tz).month)
    total_hours = hours(listening(rows))
    previous = h.window(date(year - 1, 1, 1), date(year - 1, 12, 31), tz)
    discovered = expected_discoveries(h, date(year, 1, 1), date(year, 12, 31), 1)["counts"]
    shows = expected_spoken([r for r in rows if r.track.kind == "episode"], 1)["top_shows"]
    return {
        "year": year,
        "plays": plays(rows),
        "skips": skips(rows),
        "listening_hours": total_hours,
        "estimated_hours": hours(sum(r.estimate or 0 for r in rows if r.ms is None)),
        "active_days": len(active),
        "unique_tracks": len(played),
        "unique_artists": len({v[0].artist for v in played.values() if v[0].artist}),
        "top_artists": [_public(a) for a in artists[:limit]],
        "top_tracks": [_public(t) for t in tracks[:limit]],
        "top_albums": [_public(a) for a in albums[:limit]],
        "months": [
            {"month": m, "plays": plays(months[m]), "hours": hours(listening(months[m]))}
            for m in range(1, 13)
        ],
        "busiest_day": None
        if busiest is None
        else {
            "date": busiest.isoformat(),
            "plays": plays(days[busiest]),
            "hours": hours(listening(days[busiest])),
        },
        "longest_streak": streak,
        "discoveries": discovered,
        "top_podcast_show": None
        if not shows
        else {
            "show": shows[0]["show"],
            "plays": shows[0]["plays"],
            "hours": shows[0]["hours"],
            "episodes": shows[0]["items"],
            "last_played_at": shows[0]["last_played_at"],
        },
        "compared_to_previous_year": None
        if not plays(previous)
        else {
            "year": year - 1,
            "plays": plays(previous),
            "hours": hours(listening(previous)),
            "plays_delta": plays(rows) - plays(previous),
            "hours_delta": round(total_hours - hours(listening(previous)), 2),
        },
    }


def _comparable(body: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in body.items() if k != "window"}
    show = body["top_podcast_show"]
    if show is not None:
        body["top_podcast_show"] = {**show, "last_played_at": at(show["last_played_at"])}
    return body


@pytest.mark.parametrize("year", [2024, 2025])
async def test_year_in_review_of_a_local_calendar_year(
    client: httpx.AsyncClient, history: History, personal: dict[str, str], year: int
) -> None:
    response = await client.get("/me/year-in-review", headers=personal, params={"year": year})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["window"] == {
        "start": f"{year}-01-01",
        "end": f"{year}-12-31",
        "days": 366 if year == 2024 else 365,
        "tz": "Europe/Berlin",
    }
    assert _comparable(body) == expected_year(history, year, 5)


async def test_year_in_review_highlights_of_2025(
    client: httpx.AsyncClient, history: History, personal: dict[str, str]
) -> None:
    body = (
        await client.post(
            "/mcp/call",
            headers=personal,
            json={"tool": "history_year_in_review", "args": {"year": 2025, "limit": 2}},
        )
    ).json()["result"]
    assert _comparable(body) == expected_year(history, 2025, 2)
    # 00:30 on New Year's Day in Berlin is 2025 (Harbor, first heard then, is a 2025
    # discovery); 00:00 on Jan 1 2026 is not 2025; 23:59:59 on Dec 31 2024 is not either.
    assert body["months"][0]["plays"] == 1
    assert body["discoveries"]["new_artists"] == 5  # Alpha, Beta, Delta, Foxtrot, Hotel
    assert body["busiest_day"]["date"] == "2025-07-03"
    assert body["longest_streak"] == {"days": 5, "start": "2025-07-01", "end": "2025-07-05"}
    assert body["top_podcast_show"]["show"] == "History Hour"
    assert body["compared_to_previous_year"]["plays"] == 2
    assert len(body["top_tracks"]) == 2


async def test_year_in_review_defaults_to_the_current_local_year(
    client: httpx.AsyncClient,
    history: History,
    personal: dict[str, str],
    db_session: AsyncSession,
) -> None:
    today = datetime.now(BERLIN).date()
    current = today.year
    # A play stamped tomorrow (a clock ahead) is not in the year yet; the year counts up
    # to today.
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    await add_listens(db_session, history.listener.id, history.tracks["a1"], tomorrow)
    body = (await client.get("/me/year-in-review", headers=personal)).json()
    assert body["year"] == current
    assert body["window"] == {
        "start": f"{current}-01-01",
        "end": today.isoformat(),
        "days": today.timetuple().tm_yday,
        "tz": "Europe/Berlin",
    }
    assert _comparable(body) == expected_year(history, current, 5)
    in_utc = await client.get(
        "/me/year-in-review", headers=personal, params={"tz": "UTC", "year": 2025}
    )
    # In UTC the 23:30 play of Dec 31 2024 stays in 2024 and the 23:00 one of Dec 31 2025
    # is in 2025.
    utc_body = in_utc.json()
    assert utc_body["window"]["tz"] == "UTC"
    assert utc_body["months"][0]["plays"] == 0
    assert utc_body["months"][11]["plays"] == 2
    assert {k: v for k, v in utc_body.items() if k in ("plays", "months", "longest_streak")} == {
        k: v
        for k, v in expected_year(history, 2025, 5, ZoneInfo("UTC")).items()
        if k in ("plays", "months", "longest_streak")
    }


# --- bad input -----------------------------------------------------------------------


async def test_bad_arguments_get_a_clear_422(
    client: httpx.AsyncClient, history: History, personal: dict[str, str]
) -> None:
    future = datetime.now(BERLIN).year + 1
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("history_year_in_review", {"year": 1999}, "year"),
        ("history_year_in_review", {"year": 2101}, "year"),
        ("history_year_in_review", {"year": "last"}, "year"),
        ("history_year_in_review", {"year": future}, f"year {future} is in the future"),
        ("history_year_in_review", {"days": 30}, "unknown argument days"),
        ("history_year_in_review", {"start": "2025-01-01"}, "unknown argument start"),
        ("history_year_in_review", {"tz": "Mars/Olympus"}, "unknown time zone"),
        ("history_year_in_review", {"limit": 0}, "limit"),
        ("history_discoveries", {"start": "2025-05-01", "end": "2025-04-01"}, "is after end"),
        ("history_discoveries", {"limit": 51}, "limit"),
        ("history_skips", {"days": 0}, "days"),
        ("history_skips", {"min_rows": 1}, "unknown argument min_rows"),
        ("history_podcasts", {"kind": "episode"}, "unknown argument kind"),
        ("history_podcasts", {"tz": "Nowhere/City"}, "unknown time zone"),
    ]
    for tool, args, expected in cases:
        response = await client.post(
            "/mcp/call", headers=personal, json={"tool": tool, "args": args}
        )
        assert response.status_code == 422, (tool, args, response.text)
        assert response.json()["success"] is False
        assert expected in response.json()["error"]["message"], (tool, args, response.text)
    rest = await client.get("/me/year-in-review", headers=personal, params={"year": future})
    assert rest.status_code == 422
    assert "in the future" in rest.text
