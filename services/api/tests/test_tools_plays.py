"""history_repeat_rate, history_recent_plays, history_search, history_compare_periods.

Every number is checked against a computation in plain Python over the rows the test
inserted: skips (< 30 s), API plays without ms_played (their listening time estimated by
the database as "the track's duration, cut short by the previous play"), another user's
plays that must not leak in, and windows of local days across the Berlin DST change of
2026-03-29.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.db.models import Track, User
from playlog.errors import ValidationFailed
from playlog.testing.factories import add_user
from playlog.testing.history import add_listens, add_track
from playlog_api.history.compare import LONGEST_DAYS, ComparePeriodsArgs, periods
from playlog_api.history.window import EPOCH

BERLIN = ZoneInfo("Europe/Berlin")
MS_PER_HOUR = 3_600_000


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    user: uuid.UUID
    track: Track
    artist: str | None
    at: datetime
    ms: int | None
    source: str
    # What the database estimates for a row without ms_played (computed by the test).
    estimate: int | None

    @property
    def counted(self) -> bool:
        return self.ms is None or self.ms >= 30_000

    @property
    def listening(self) -> int:
        return self.ms if self.ms is not None else (self.estimate or 0)

    @property
    def music(self) -> bool:
        return self.track.kind == "track"

    def local_day(self) -> date:
        return self.at.astimezone(BERLIN).date()


@dataclass
class History:
    listener: User
    other: User
    tracks: dict[str, Track]
    artists: dict[str, str | None]
    rows: list[Row] = field(default_factory=list)

    async def add(
        self,
        session: AsyncSession,
        user: User,
        track: str,
        at: datetime,
        ms: int | None = 180_000,
    ) -> None:
        """One row, inserted on its own so the estimate sees every earlier row."""
        the_track = self.tracks[track]
        source = "spotify_api" if ms is None else "import_zip"
        estimate = None
        if ms is None and the_track.duration_ms is not None:
            # The play lasted at most the time since the user's previous row ended.
            earlier = [r.at for r in self.rows if r.user == user.id and r.at < at]
            estimate = the_track.duration_ms
            if earlier:
                gap_ms = int((at - max(earlier)).total_seconds() * 1000)
                estimate = min(estimate, gap_ms)
        await add_listens(session, user.id, the_track, at, ms_played=ms, source=source)
        self.rows.append(Row(user.id, the_track, self.artists[track], at, ms, source, estimate))

    def mine(self, first: date | None = None, last: date | None = None) -> list[Row]:
        """The listener's rows whose local (Berlin) day is in [first, last]."""
        return [
            r
            for r in self.rows
            if r.user == self.listener.id
            and (first is None or r.local_day() >= first)
            and (last is None or r.local_day() <= last)
        ]


@pytest_asyncio.fixture
async def history(db_session: AsyncSession, listener: User) -> History:
    other = await add_user(db_session, "Other", authorized_days_ago=None, checkpoint=None)
    specs: dict[str, tuple[str, str | None, dict[str, Any]]] = {
        "A": ("Alpha", "Artist One", {"album": "First Album"}),
        "B": ("Beta", "Artist One", {"album": "First Album"}),
        "C": ("Gamma 100%", "Artist Two", {"album": "Second Album"}),
        "D": ("Delta", "Artist Three", {"album": "Under_score"}),
        "G": ("Back\\Slash", "Artist Two", {"album": "Second Album"}),
        "E": ("Episode 1", None, {"kind": "episode", "show": "Pod Show"}),
        "X": ("Alpha Other", "Artist One", {"album": "First Album"}),
    }
    tracks = {}
    for key, (name, artist, extra) in specs.items():
        tracks[key] = await add_track(db_session, name, artist, **extra)
    h = History(listener, other, tracks, {key: spec[1] for key, spec in specs.items()})
    me, them = listener, other
    rows: list[tuple[User, str, datetime, int | None]] = [
        (me, "D", utc(2, 10, 12), 200_000),
        (me, "C", utc(2, 28, 22, 30), 180_000),  # 23:30 on Feb 28 in Berlin
        (me, "C", utc(2, 28, 23, 30), 180_000),  # 00:30 on Mar 1 in Berlin
        (me, "A", utc(3, 2, 10, 0), 180_000),
        (them, "B", utc(3, 2, 10, 2), 180_000),  # another user's play between mine
        (me, "A", utc(3, 2, 10, 4), 180_000),
        (them, "X", utc(3, 2, 10, 6), 180_000),
        (me, "A", utc(3, 2, 10, 8), 10_000),  # a skip: not a play, does not break a run
        (me, "A", utc(3, 2, 10, 12), 180_000),
        (me, "B", utc(3, 2, 10, 16), 180_000),
        (me, "E", utc(3, 2, 10, 20), 600_000),
        (me, "E", utc(3, 2, 10, 50), 1_500_000),  # an episode twice: not a music repeat
        (me, "B", utc(3, 2, 11, 0), 180_000),
        (me, "B", utc(3, 3, 9, 0), None),  # API plays: estimated 200 000 ms ...
        (me, "B", utc(3, 3, 9, 2), None),  # ... and cut to the 120 000 ms since the last
        (me, "C", utc(3, 3, 9, 8), 25_000),
        (me, "C", utc(3, 3, 9, 12), 29_999),
        (me, "C", utc(3, 3, 9, 16), 30_000),
        (me, "G", utc(3, 5, 20, 0), 180_000),
        (me, "D", utc(3, 5, 20, 0), 190_000),  # two rows at one instant
        (me, "A", utc(3, 10, 8, 0), None),
        (me, "A", utc(3, 28, 22, 30), 180_000),  # 23:30 on Mar 28 (CET)
        (them, "X", utc(3, 28, 23, 40), 180_000),
        (me, "B", utc(3, 28, 23, 30), 180_000),  # 00:30 on Mar 29, the DST day
        (them, "A", utc(3, 29, 12, 0), 180_000),
        (them, "A", utc(3, 29, 12, 4), 180_000),
        (me, "C", utc(3, 29, 21, 30), 180_000),  # 23:30 on Mar 29 (CEST)
        (me, "D", utc(3, 29, 22, 30), 180_000),  # 00:30 on Mar 30
        (me, "A", utc(4, 5, 12, 0), 180_000),
    ]
    for user, key, at, ms in sorted(rows, key=lambda r: r[2]):
        await h.add(db_session, user, key, at, ms)
    return h


async def call(
    client: httpx.AsyncClient, headers: dict[str, str], tool: str, args: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post("/mcp/call", headers=headers, json={"tool": tool, "args": args})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


async def refused(
    client: httpx.AsyncClient, headers: dict[str, str], tool: str, args: dict[str, Any]
) -> str:
    response = await client.post("/mcp/call", headers=headers, json={"tool": tool, "args": args})
    assert response.status_code == 422, (args, response.text)
    message: str = response.json()["error"]["message"]
    return message


def hours(ms: int) -> float:
    return round(ms / MS_PER_HOUR, 2)


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")


def top_tracks(rows: list[Row], limit: int) -> list[dict[str, Any]]:
    """queries.top_tracks, recomputed: music, plays then listening time then name."""
    by_track: dict[str, list[Row]] = {}
    for r in rows:
        if r.music:
            by_track.setdefault(r.track.track_id, []).append(r)
    items = []
    for own in by_track.values():
        plays = sum(r.counted for r in own)
        ms = sum(r.listening for r in own)
        t = own[0].track
        if plays:
            items.append((-plays, -ms, t.name, t.track_id, own[0].artist, t.album_name))
    return [
        {
            "track_id": track_id,
            "name": name,
            "artist": artist,
            "album": album,
            "plays": -plays,
            "hours": hours(-ms),
        }
        for plays, ms, name, track_id, artist, album in sorted(items)[:limit]
    ]


def top_artists(rows: list[Row], limit: int) -> list[tuple[str, int, float, int]]:
    plays: Counter[str] = Counter()
    ms: Counter[str] = Counter()
    tracks: dict[str, set[str]] = {}
    for r in rows:
        if r.music and r.artist is not None:
            plays[r.artist] += r.counted
            ms[r.artist] += r.listening
            if r.counted:
                tracks.setdefault(r.artist, set()).add(r.track.track_id)
    ranked = sorted((a for a in plays if plays[a]), key=lambda a: (-plays[a], -ms[a], a))
    return [(a, plays[a], hours(ms[a]), len(tracks[a])) for a in ranked[:limit]]


# history_repeat_rate ------------------------------------------------------------------


def expected_repeats(rows: list[Row], limit: int) -> dict[str, Any]:
    music = [r for r in rows if r.music and r.counted]
    per_track = Counter(r.track.track_id for r in music)
    plays, unique = len(music), len(per_track)
    # The sequence of plays of every kind; a run is a stretch of one track in it.
    sequence = sorted((r for r in rows if r.counted), key=lambda r: (r.at, r.track.track_id))
    runs = [list(group) for _, group in itertools.groupby(sequence, key=lambda r: r.track)]
    music_runs = [run for run in runs if run[0].music and len(run) > 1]
    longest = max(music_runs, key=lambda run: (len(run), run[-1].at), default=None)
    return {
        "plays": plays,
        "unique_tracks": unique,
        "repeat_rate": round(1 - unique / plays, 4) if plays else 0.0,
        "plays_per_track": round(plays / unique, 2) if unique else 0.0,
        "tracks_played_once": sum(1 for n in per_track.values() if n == 1),
        "tracks_played_10_plus": sum(1 for n in per_track.values() if n >= 10),
        "most_plays_of_one_track": max(per_track.values(), default=0),
        "most_repeated": [t for t in top_tracks(rows, limit) if t["plays"] >= 2],
        "consecutive_repeats": sum(len(run) - 1 for run in music_runs),
        "longest_run": None
        if longest is None
        else {
            "track_id": longest[0].track.track_id,
            "name": longest[0].track.name,
            "artist": longest[0].artist,
            "plays": len(longest),
            "started_at": iso(longest[0].at),
            "ended_at": iso(longest[-1].at),
        },
    }


async def test_repeat_rate_counts_repeats_and_back_to_back_runs(
    client: httpx.AsyncClient, history: History, personal: dict[str, str]
) -> None:
    march = await call(
        client, personal, "history_repeat_rate", {"start": "2026-03-01", "end": "2026-03-31"}
    )
    expected = expected_repeats(history.mine(date(2026, 3, 1), date(2026, 3, 31)), 5)
    assert {k: march[k] for k in expected} == expected
    assert march["window"] == {
        "start": "2026-03-01",
        "end": "2026-03-31",
        "days": 31,
        "tz": "Europe/Berlin",
    }
    # The fixture's runs: A x3 (skip ignored), B x3 (API plays), A x2 (days apart).
    assert march["consecutive_repeats"] == 5
    assert march["longest_run"]["name"] == "Beta"
    assert march["longest_run"]["plays"] == 3

    # All time: the per-track part now comes from the running totals.
    everything = await call(client, personal, "history_repeat_rate", {"days": 36500, "limit": 2})
    expected = expected_repeats(history.mine(), 2)
    assert {k: everything[k] for k in expected} == expected

    # A window where nothing repeats, via the REST route.
    quiet = await client.get(
        "/me/repeat-rate", headers=personal, params={"start": "2026-04-01", "end": "2026-04-30"}
    )
    assert quiet.status_code == 200, quiet.text
    assert quiet.json()["plays"] == 1
    assert quiet.json()["consecutive_repeats"] == 0
    assert quiet.json()["longest_run"] is None
    assert quiet.json()["most_repeated"] == []


# history_recent_plays -----------------------------------------------------------------


def play_item(r: Row) -> dict[str, Any]:
    return {
        "played_at": iso(r.at),
        "track_id": r.track.track_id,
        "name": r.track.name,
        "artist": r.artist,
        "album": r.track.album_name or r.track.show_name,
        "kind": r.track.kind,
        "ms_played": r.ms,
        "skipped": r.ms is not None and r.ms < 30_000,
        "source": r.source,
    }


async def test_recent_plays_pages_back_by_instant(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    history: History,
    personal: dict[str, str],
    admin: dict[str, str],
) -> None:
    for include_skips in (False, True):
        newest_first = sorted(
            (r for r in history.mine() if include_skips or r.counted),
            key=lambda r: (r.at, r.track.track_id),
            reverse=True,
        )
        pages: list[list[dict[str, Any]]] = []
        args: dict[str, Any] = {"limit": 3, "include_skips": include_skips}
        while True:
            page = await call(client, personal, "history_recent_plays", args)
            pages.append(page["plays"])
            if page["next_before"] is None:
                break
            assert page["next_before"] == page["plays"][-1]["played_at"]
            args["before"] = page["next_before"]
        assert [item for page in pages for item in page] == [play_item(r) for r in newest_first]
        assert all(1 <= len(page) <= 3 for page in pages)
        instants = [{item["played_at"] for item in page} for page in pages]
        assert all(a.isdisjoint(b) for a, b in itertools.combinations(instants, 2))

    # Two plays share 2026-03-05 20:00: a page never splits them, even with limit 1.
    tied = await call(
        client,
        personal,
        "history_recent_plays",
        {"limit": 1, "before": "2026-03-05T21:00:01+01:00"},
    )
    assert {item["name"] for item in tied["plays"]} == {"Delta", "Back\\Slash"}
    assert tied["next_before"] == "2026-03-05T20:00:00Z"
    after = await call(
        client, personal, "history_recent_plays", {"limit": 1, "before": tied["next_before"]}
    )
    assert [item["played_at"] for item in after["plays"]] == ["2026-03-03T09:16:00Z"]

    # When the oldest instant holds more plays than the limit, its page is the last.
    await history.add(db_session, history.other, "B", utc(1, 5, 9))
    await history.add(db_session, history.other, "X", utc(1, 5, 9))
    oldest = await client.get(
        f"/history/users/{history.other.id}/recent-plays",
        headers=admin,
        params={"limit": 1, "before": "2026-01-05T09:00:01Z"},
    )
    assert oldest.status_code == 200, oldest.text
    assert {item["name"] for item in oldest.json()["plays"]} == {"Beta", "Alpha Other"}
    assert oldest.json()["next_before"] is None

    # The REST route, with an offset in the query string; nothing before the first play.
    rest = await client.get(
        "/me/recent-plays",
        headers=personal,
        params={"before": "2026-02-10T13:00:01+01:00", "include_skips": "true"},
    )
    assert rest.status_code == 200, rest.text
    assert rest.json() == {"plays": [play_item(history.mine()[0])], "next_before": None}


# history_search -----------------------------------------------------------------------


def expected_search(
    history: History, rows: list[Row], needle: str, where: str, limit: int
) -> dict[str, Any]:
    needle = needle.lower()

    def matches(t: Track, artist: str | None) -> bool:
        fields: dict[str, list[str | None]] = {
            "track": [t.name],
            "artist": [artist],
            "album": [t.album_name, t.show_name],
        }
        wanted = list(fields.values()) if where == "any" else [fields[where]]
        return any(needle in text.lower() for values in wanted for text in values if text)

    played = {r.track.track_id for r in history.mine()}
    by_track: dict[str, list[Row]] = {}
    for r in rows:
        if r.track.track_id in played and matches(r.track, r.artist):
            by_track.setdefault(r.track.track_id, []).append(r)
    items = []
    for own in by_track.values():
        counted = [r.at for r in own if r.counted]
        plays, ms, t = len(counted), sum(r.listening for r in own), own[0].track
        item = {
            "track_id": t.track_id,
            "name": t.name,
            "artist": own[0].artist,
            "album": t.album_name or t.show_name,
            "kind": t.kind,
            "plays": plays,
            "skips": len(own) - plays,
            "hours": hours(ms),
            "first_played_at": iso(min(counted, default=None)),
            "last_played_at": iso(max(counted, default=None)),
        }
        items.append(((-plays, -ms, t.name, t.track_id), item))
    every = [r for own in by_track.values() for r in own]
    return {
        "totals": {
            "plays": sum(r.counted for r in every),
            "skips": sum(not r.counted for r in every),
            "hours": hours(sum(r.listening for r in every)),
            "tracks": len(by_track),
        },
        "matches": [item for _, item in sorted(items, key=lambda pair: pair[0])][:limit],
    }


async def test_search_finds_plays_by_track_artist_and_album(
    client: httpx.AsyncClient, history: History, personal: dict[str, str]
) -> None:
    march = {"start": "2026-03-01", "end": "2026-03-31"}
    cases: list[tuple[str, str, dict[str, Any], list[str]]] = [
        # "Alpha Other" is only the other user's: it must not be found.
        ("alpha", "any", {}, ["Alpha"]),
        ("ARTIST ONE", "artist", {}, ["Alpha", "Beta"]),
        ("artist", "track", {}, []),
        ("second", "album", march, ["Gamma 100%", "Back\\Slash"]),
        ("pod show", "album", {}, ["Episode 1"]),
        ("a", "any", march, ["Alpha", "Beta", "Gamma 100%", "Delta"]),
        # LIKE wildcards are literal characters.
        ("%", "any", {}, ["Gamma 100%"]),
        ("_", "any", {}, ["Delta"]),
        ("\\", "any", {}, ["Back\\Slash"]),
        ("0%", "track", march, ["Gamma 100%"]),
        # Names are matched one by one: no match spans the end of one and start of another.
        ("alphafirst", "any", {}, []),
        ("albumartist", "any", {}, []),
        ("1pod", "any", {}, []),
        # A show name is found by any field; surrounding whitespace is trimmed.
        ("\tpod show\n", "any", {}, ["Episode 1"]),
    ]
    for needle, where, window, names in cases:
        result = await call(
            client,
            personal,
            "history_search",
            {"query": needle, "field": where, "limit": 4, **window},
        )
        first, last = (date(2026, 3, 1), date(2026, 3, 31)) if window else (None, None)
        text = needle.strip()
        expected = expected_search(history, history.mine(first, last), text, where, 4)
        assert {"totals": result["totals"], "matches": result["matches"]} == expected, needle
        assert [m["name"] for m in result["matches"]] == names[:4], needle
        assert result["query"] == text
        assert result["window"]["start"] == ("2026-03-01" if window else "2000-01-01")

    # Beta in March: 5 plays, 2 of them API plays (200 000 ms, then cut to 120 000 ms).
    beta = await call(client, personal, "history_search", {"query": "beta", **march})
    assert beta["matches"][0]["plays"] == 5
    assert beta["matches"][0]["hours"] == hours(180_000 * 3 + 200_000 + 120_000)


async def test_search_publishes_the_all_time_default_it_applies(
    client: httpx.AsyncClient, history: History, personal: dict[str, str]
) -> None:
    # What a client reads: the catalog's schema and the GPT action's query parameter.
    catalog = (await client.get("/mcp/tools", headers=personal)).json()["tools"]
    days = {
        t["name"]: t["input_schema"]["properties"]["days"]["description"]
        for t in catalog
        if "days" in t["input_schema"]["properties"]
    }
    assert "Default all time when no start/end is given." in days["history_search"]
    assert "Default 90 when no start/end is given." in days["history_top_tracks"]
    gpt = (await client.get("/openapi-gpt.json")).json()
    parameters = {p["name"]: p for p in gpt["paths"]["/me/search"]["get"]["parameters"]}
    assert parameters["days"]["description"] == days["history_search"]

    # What it does: without a window, every stored play of the user, from the first day
    # a play can have (where the top lists would start 90 days ago).
    result = await call(client, personal, "history_search", {"query": "a"})
    top = await call(client, personal, "history_top_tracks", {})
    assert (result["window"]["start"], top["window"]["days"]) == ("2000-01-01", 90)
    expected = expected_search(history, history.mine(), "a", "any", 10)
    assert expected["totals"]["plays"] > 0
    assert result["totals"] == expected["totals"]


# history_compare_periods --------------------------------------------------------------


def expected_period(rows: list[Row], limit: int) -> dict[str, Any]:
    music = [r for r in rows if r.music and r.counted]
    return {
        "plays": sum(r.counted for r in rows),
        "skips": sum(not r.counted for r in rows),
        "listening_hours": hours(sum(r.listening for r in rows)),
        "unique_tracks": len({r.track.track_id for r in music}),
        "unique_artists": len({r.artist for r in music if r.artist is not None}),
        "top_artists": top_artists(rows, limit),
        "top_tracks": top_tracks(rows, limit),
    }


def period_view(result: dict[str, Any]) -> dict[str, Any]:
    view = {k: result[k] for k in ("plays", "skips", "listening_hours")}
    view |= {k: result[k] for k in ("unique_tracks", "unique_artists", "top_tracks")}
    view["top_artists"] = [
        (a["name"], a["plays"], a["hours"], a["tracks"]) for a in result["top_artists"]
    ]
    return view


def expected_change(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    a_names = [name for name, *_ in a["top_artists"]]
    b_names = [name for name, *_ in b["top_artists"]]
    return {
        "plays_delta": a["plays"] - b["plays"],
        "plays_percent": round((a["plays"] - b["plays"]) * 100 / b["plays"], 1)
        if b["plays"]
        else None,
        "listening_hours_delta": round(a["listening_hours"] - b["listening_hours"], 2),
        "new_top_artists": [n for n in a_names if n not in b_names],
        "dropped_top_artists": [n for n in b_names if n not in a_names],
        "common_top_artists": [n for n in a_names if n in b_names],
    }


async def test_compare_periods_splits_at_local_midnight_across_dst(
    client: httpx.AsyncClient, history: History, personal: dict[str, str]
) -> None:
    periods = [
        # The DST day (23 hours) against the day before: 00:30 CET belongs to the 29th.
        ((date(2026, 3, 29), date(2026, 3, 29)), (date(2026, 3, 28), date(2026, 3, 28)), 5),
        ((date(2026, 3, 1), date(2026, 3, 31)), (date(2026, 2, 1), date(2026, 2, 28)), 2),
        ((date(2026, 4, 1), date(2026, 4, 30)), (date(2026, 1, 1), date(2026, 1, 31)), 5),
    ]
    for (a_first, a_last), (b_first, b_last), limit in periods:
        result = await call(
            client,
            personal,
            "history_compare_periods",
            {
                "a_start": a_first.isoformat(),
                "a_end": a_last.isoformat(),
                "b_start": b_first.isoformat(),
                "b_end": b_last.isoformat(),
                "limit": limit,
            },
        )
        a = expected_period(history.mine(a_first, a_last), limit)
        b = expected_period(history.mine(b_first, b_last), limit)
        assert period_view(result["a"]) == a
        assert period_view(result["b"]) == b
        assert result["change"] == expected_change(a, b)
        assert result["a"]["window"]["start"] == a_first.isoformat()
        assert result["b"]["window"]["days"] == (b_last - b_first).days + 1

    dst = await call(
        client,
        personal,
        "history_compare_periods",
        {
            "a_start": "2026-03-29",
            "a_end": "2026-03-29",
            "b_start": "2026-03-28",
            "b_end": "2026-03-28",
        },
    )
    assert [t["name"] for t in dst["a"]["top_tracks"]] == ["Beta", "Gamma 100%"]
    assert [t["name"] for t in dst["b"]["top_tracks"]] == ["Alpha"]
    assert dst["change"]["new_top_artists"] == ["Artist Two"]
    assert dst["change"]["common_top_artists"] == ["Artist One"]
    assert dst["change"]["plays_percent"] == 100.0


async def test_compare_periods_days_shorthand(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    history: History,
    personal: dict[str, str],
) -> None:
    now = datetime.now(UTC)
    await history.add(db_session, history.listener, "A", now - timedelta(days=2))
    await history.add(db_session, history.listener, "B", now - timedelta(days=9, hours=1))
    await history.add(db_session, history.listener, "B", now - timedelta(days=10))
    await history.add(db_session, history.other, "A", now - timedelta(days=3))
    before = now.astimezone(BERLIN).date()
    result = await call(client, personal, "history_compare_periods", {"days": 7})
    today = datetime.now(UTC).astimezone(BERLIN).date()
    assert result["a"]["window"]["end"] in {before.isoformat(), today.isoformat()}
    today = date.fromisoformat(result["a"]["window"]["end"])
    a_first, b_first = today - timedelta(days=6), today - timedelta(days=13)
    assert result["a"]["window"] == {
        "start": a_first.isoformat(),
        "end": today.isoformat(),
        "days": 7,
        "tz": "Europe/Berlin",
    }
    assert result["b"]["window"]["start"] == b_first.isoformat()
    assert result["b"]["window"]["end"] == (a_first - timedelta(days=1)).isoformat()
    a = expected_period(history.mine(a_first, today), 5)
    b = expected_period(history.mine(b_first, a_first - timedelta(days=1)), 5)
    assert (a["plays"], b["plays"]) == (1, 2)
    assert period_view(result["a"]) == a
    assert period_view(result["b"]) == b
    assert result["change"]["plays_percent"] == -50.0
    assert result["change"]["dropped_top_artists"] == []
    assert result["change"]["common_top_artists"] == ["Artist One"]


def test_compare_periods_longest_days_fit_after_the_epoch_and_older_clocks_are_told() -> None:
    # The longest shorthand the schema allows starts period B in 2000 or later from today
    # on; a clock set earlier (B would start before 2000) gets the longest it allows.
    today = datetime.now(UTC).date()
    _, (b_first, _) = periods(ComparePeriodsArgs(days=LONGEST_DAYS), today)
    assert b_first >= EPOCH
    with pytest.raises(ValidationFailed) as refused:
        periods(ComparePeriodsArgs(days=LONGEST_DAYS), date(2020, 1, 1))
    assert refused.value.message.endswith(
        "days: period B would start before 2000-01-01; use at most 3653 days"
    )
    _, (b_first, _) = periods(ComparePeriodsArgs(days=3653), date(2020, 1, 1))
    assert b_first == EPOCH


# Bad input ----------------------------------------------------------------------------


async def test_bad_arguments_get_a_clear_422(
    client: httpx.AsyncClient, personal: dict[str, str]
) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("history_repeat_rate", {"limit": 51}, "limit"),
        ("history_repeat_rate", {"days": 7, "end": "2026-01-01"}, "either days or start/end"),
        ("history_recent_plays", {"limit": 0}, "limit"),
        ("history_recent_plays", {"before": "2026-03-01T12:00:00"}, "timezone"),
        ("history_recent_plays", {"before": "yesterday"}, "before"),
        # Outside what PostgreSQL stores once in UTC, and outside any window's days.
        (
            "history_recent_plays",
            {"before": "0001-01-01T00:00:00+14:00"},
            "before must be between 2000-01-01 and 2100-12-31",
        ),
        (
            "history_recent_plays",
            {"before": "9999-12-31T23:59:59-14:00"},
            "before must be between 2000-01-01 and 2100-12-31",
        ),
        ("history_recent_plays", {"before": "1999-12-31T23:59:59Z"}, "before must be between"),
        ("history_recent_plays", {"days": 7}, "unknown argument days"),
        ("history_recent_plays", {"before": 1800000000}, "before: must be an ISO 8601 date-time"),
        ("history_recent_plays", {"before": "1800000000"}, "not a number"),
        ("history_search", {}, "query"),
        ("history_search", {"query": "   "}, "query"),
        ("history_search", {"query": "x" * 201}, "query"),
        ("history_search", {"query": "x", "field": "genre"}, "field"),
        ("history_search", {"query": "a\tb"}, "must not contain control characters"),
        ("history_search", {"query": "a\u001fb"}, "must not contain control characters"),
        ("history_search", {"query": "x", "tz": "Mars/Base"}, "unknown time zone"),
        # Names Python can open that are no place, or whose clock PostgreSQL reads
        # differently (leap seconds): their buckets would disagree.
        ("history_search", {"query": "x", "tz": "right/Europe/Berlin"}, "unknown time zone"),
        ("history_search", {"query": "x", "tz": "posix/Europe/Berlin"}, "unknown time zone"),
        ("history_search", {"query": "x", "tz": "localtime"}, "unknown time zone"),
        ("history_search", {"query": "x", "tz": "Factory"}, "unknown time zone"),
        ("history_compare_periods", {}, "give days, or all of a_start"),
        ("history_compare_periods", {"days": 7, "a_start": "2026-01-01"}, "not both"),
        (
            "history_compare_periods",
            {"a_start": "2026-01-01", "a_end": "2026-01-31"},
            "missing: b_start, b_end",
        ),
        (
            "history_compare_periods",
            {
                "a_start": "2026-02-01",
                "a_end": "2026-01-31",
                "b_start": "2025-01-01",
                "b_end": "2025-01-31",
            },
            "a_start (2026-02-01) is after a_end (2026-01-31)",
        ),
        (
            "history_compare_periods",
            {
                "a_start": "2026-01-01",
                "a_end": "2026-01-31",
                "b_start": "1999-12-01",
                "b_end": "2000-01-31",
            },
            "b_start must be between 2000-01-01 and 2100-12-31",
        ),
        (
            "history_compare_periods",
            {
                "a_start": "2000-01-01",
                "a_end": "2100-12-31",
                "b_start": "2000-01-01",
                "b_end": "2000-01-31",
            },
            "period A is longer than 36500 days",
        ),
        ("history_compare_periods", {"days": 0}, "days"),
        ("history_compare_periods", {"days": 4901}, "less than or equal to 4900"),
        ("history_compare_periods", {"days": 7, "tz": "Nowhere/City"}, "unknown time zone"),
        ("history_compare_periods", {"days": 7, "limit": 51}, "limit"),
    ]
    for tool, args, expected in cases:
        message = await refused(client, personal, tool, args)
        assert expected in message, (tool, args, message)
    rest = await client.get("/me/search", headers=personal, params={"query": "x", "days": 0})
    assert rest.status_code == 422
    rest = await client.get(
        "/me/compare-periods", headers=personal, params={"a_start": "2026-01-01"}
    )
    assert rest.status_code == 422
    assert "missing: a_end, b_start, b_end" in rest.text
