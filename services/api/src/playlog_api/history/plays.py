"""Single plays: the latest ones, and the plays of tracks found by name.

``history_recent_plays`` reads the (user_id, played_at, track_id) index backwards with a
LIMIT and pages by keyset (``before``), so a page costs the same at any depth.
``history_search`` first finds the matching tracks among those the user has played
(``play_tracks``), then totals their plays: from ``play_tracks`` itself when the window
holds the whole history, else from the window's plays of those tracks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints
from sqlalchemy import text

from playlog.text import has_control_characters
from playlog_api.history.schemas import Limit, hours
from playlog_api.history.totals import COUNTED, IN_WINDOW, LISTENING_MS, open_scope
from playlog_api.history.window import (
    MAX_DAYS,
    AllTimeDays,
    WindowArgs,
    WindowView,
    check_days,
)
from playlog_api.instants import Instant
from playlog_api.tools.registry import ToolArgs, ToolContext, tool

# Stands in for "no upper bound" so the index condition is a plain range in both cases.
_NO_BOUND = datetime(9999, 1, 1, tzinfo=UTC)

_RECENT = f"""
    WITH recent AS (
        SELECT p.played_at, p.track_id, p.ms_played, p.source, NOT {COUNTED} AS skipped
        FROM plays p
        WHERE p.user_id = :user_id AND p.played_at < :before
            AND (:include_skips OR {COUNTED})
        ORDER BY p.played_at DESC
        FETCH FIRST (:limit) ROWS WITH TIES
    )
    SELECT r.played_at, r.track_id, l.name, l.artist_name, coalesce(l.album_name, l.show_name),
        l.kind, r.ms_played, r.skipped, r.source
    FROM recent r
    JOIN track_lookup l ON l.track_id = r.track_id
    ORDER BY r.played_at DESC, r.track_id DESC"""
# Whether a row the page would list is older than :before.
_OLDER = f"""
    SELECT EXISTS (SELECT FROM plays p WHERE p.user_id = :user_id AND p.played_at < :before
        AND (:include_skips OR {COUNTED}))"""

# Tracks whose name, primary artist or album/show contains the pattern, with what the
# answer shows of them; the statistics below keep the user's own. One scan of the
# catalogue, however broad the text (no UNION to sort; the joins of every other tool
# read the whole catalogue too). Any field matches the stored lowercase search_text
# (lower() on every name at query time cost four times as much); one field lowercases
# that column.
_LIKE = "LIKE lower(:pattern) ESCAPE '\\'"
_FIELD_MATCHES = {
    "any": f"l.search_text {_LIKE}",
    "track": f"lower(l.name) {_LIKE}",
    "album": f"(lower(l.album_name) {_LIKE} OR lower(l.show_name) {_LIKE})",
    "artist": f"lower(l.artist_name) {_LIKE}",
}
_MATCHED = """
    SELECT l.track_id, l.name, coalesce(l.album_name, l.show_name) AS album, l.kind,
        l.artist_name AS artist
    FROM track_lookup l WHERE {match}"""

# Per matching track: rows, plays, listening_ms, first_played_at, last_played_at, like
# scope.tracks but only for the matches (a window of all history reads the totals).
_STATS_ROLLUP = """
    SELECT m.*, pt.rows, pt.plays, pt.listening_ms, pt.first_played_at, pt.last_played_at
    FROM matched m JOIN play_tracks pt ON pt.user_id = :user_id AND pt.track_id = m.track_id"""
_STATS_RAW = f"""
    SELECT m.track_id, m.name, m.album, m.kind, m.artist, count(*) AS rows,
        count(*) FILTER (WHERE {COUNTED}) AS plays, sum({LISTENING_MS}) AS listening_ms,
        min(p.played_at) FILTER (WHERE {COUNTED}) AS first_played_at,
        max(p.played_at) FILTER (WHERE {COUNTED}) AS last_played_at
    FROM matched m JOIN plays p ON p.track_id = m.track_id
    WHERE {IN_WINDOW}
    GROUP BY m.track_id, m.name, m.album, m.kind, m.artist"""


def _search(stats: str, field: str) -> str:
    # Totals over every match ride along as window aggregates, computed before the LIMIT.
    return f"""
    WITH matched AS ({_MATCHED.format(match=_FIELD_MATCHES[field])}), stats AS ({stats}),
    ranked AS (
        SELECT s.*, count(*) OVER () AS total_tracks, sum(s.plays) OVER ()::bigint AS total_plays,
            sum(s.rows - s.plays) OVER ()::bigint AS total_skips,
            sum(s.listening_ms) OVER ()::bigint AS total_ms
        FROM stats s
        ORDER BY s.plays DESC, s.listening_ms DESC, s.name, s.track_id
        LIMIT :limit
    )
    SELECT r.track_id, r.name, r.artist, r.album, r.kind, r.plays, r.rows - r.plays,
        r.listening_ms, r.first_played_at, r.last_played_at, r.total_tracks,
        r.total_plays, r.total_skips, r.total_ms
    FROM ranked r
    ORDER BY r.plays DESC, r.listening_ms DESC, r.name, r.track_id"""


# By field, then by whether the window's totals come from play_tracks.
_SEARCHES = {
    field: {True: _search(_STATS_ROLLUP, field), False: _search(_STATS_RAW, field)}
    for field in _FIELD_MATCHES
}


def _within_windows(before: datetime | None) -> datetime | None:
    """A ``before`` on a day no window may reach is refused (422) like such a window; at
    the far ends of the calendar it would not even be a timestamp PostgreSQL stores."""
    if before is not None:
        try:
            day = before.astimezone(UTC).date()
        except OverflowError:  # the calendar's first or last day, with an offset
            day = before.date()
        check_days({"before": day})
    return before


class RecentPlaysArgs(ToolArgs):
    limit: Limit = 20
    before: Annotated[Instant | None, AfterValidator(_within_windows)] = Field(
        default=None,
        description="Only plays strictly before this instant (with offset); "
        "pass next_before to get the next page.",
    )
    include_skips: bool = Field(default=False, description="Also list rows under 30 s.")


class PlayItem(BaseModel):
    played_at: datetime = Field(description="End of playback.")
    track_id: str
    name: str
    artist: str | None
    album: str | None = Field(description="Album, or show for episodes.")
    kind: str
    ms_played: int | None = Field(description="Null when unknown (plays seen by the API).")
    skipped: bool = Field(description="Under 30 s of playback.")
    source: str


class RecentPlays(BaseModel):
    plays: list[PlayItem] = Field(description="Newest first.")
    next_before: datetime | None = Field(description="`before` of the next page; null at end.")


@tool("history_recent_plays", path="recent-plays")
async def history_recent_plays(context: ToolContext, args: RecentPlaysArgs) -> RecentPlays:
    """The user's latest plays, newest first: when each ended, track, artist, album or show,
    kind, ms played (null if unknown) and whether it was a skip (under 30 s). Skips are left
    out unless include_skips is true; page back with before=next_before. A page never
    splits plays that end at the same instant (account data is to the minute), so it may
    hold a few rows fewer than limit, or more when one instant holds more."""
    params = {
        "user_id": context.user.id,
        "before": args.before or _NO_BOUND,
        "include_skips": args.include_skips,
        # One row more than asked (with every row of its instant) tells whether an
        # older page exists and where the page may end.
        "limit": args.limit + 1,
    }
    rows = list((await context.session.execute(text(_RECENT), params)).all())
    page, more = rows, len(rows) > args.limit
    if more:
        # Pages split between instants, never inside one (the next page starts strictly
        # before this one's last play): the extra row's instant moves to the next page
        # whole. Only when one instant holds more plays than the limit does the page
        # grow to hold them all; whether an older page exists is then asked apart.
        page = [row for row in rows if row.played_at != rows[-1].played_at]
        if not page:
            page = rows
            params["before"] = rows[-1].played_at
            more = bool((await context.session.execute(text(_OLDER), params)).scalar_one())
    items = [
        PlayItem(
            played_at=played_at,
            track_id=track_id,
            name=name,
            artist=artist,
            album=album,
            kind=kind,
            ms_played=ms_played,
            skipped=skipped,
            source=source,
        )
        for played_at, track_id, name, artist, album, kind, ms_played, skipped, source in page
    ]
    return RecentPlays(plays=items, next_before=items[-1].played_at if more else None)


def _without_control_characters(query: str) -> str:
    # Names are matched joined by one (track_lookup.search_text): a query never has one.
    if has_control_characters(query):
        raise ValueError("must not contain control characters (tabs, line breaks)")
    return query


Query = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_without_control_characters),
    Field(
        description="Text to find (case-insensitive substring; 1-200 characters once"
        " leading and trailing spaces are dropped, no control characters such as tabs or"
        " line breaks)."
    ),
]


class SearchArgs(WindowArgs):
    # "How often did I play X" means ever, unless a window is asked for.
    default_days: ClassVar[int] = MAX_DAYS

    days: AllTimeDays = None
    query: Query
    field: Literal["any", "track", "artist", "album"] = Field(
        default="any", description="Where to look; album also matches podcast shows."
    )
    limit: Limit = 10


class SearchMatch(BaseModel):
    track_id: str
    name: str
    artist: str | None
    album: str | None = Field(description="Album, or show for episodes.")
    kind: str
    plays: int
    skips: int
    hours: float
    first_played_at: datetime | None = Field(description="First play in the window.")
    last_played_at: datetime | None


class SearchTotals(BaseModel):
    plays: int
    skips: int
    hours: float
    tracks: int = Field(description="Matching tracks with a play or skip in the window.")


class SearchResult(BaseModel):
    window: WindowView
    query: str
    field: str
    totals: SearchTotals = Field(description="Over every match, not only the listed ones.")
    matches: list[SearchMatch] = Field(description="Most played matching tracks first.")


def like_pattern(query: str) -> str:
    """A LIKE pattern for ``query`` as a literal substring (escape character ``\\``)."""
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@tool("history_search", path="search")
async def history_search(context: ToolContext, args: SearchArgs) -> SearchResult:
    """Plays of the tracks whose name, primary artist or album/show contains a text, over a
    window (default: all time): the matching tracks with plays, skips, hours and first and
    last play, plus totals over all matches. Use it for "how often did I play X" or "when
    did I first hear Y"; narrow with field=track|artist|album."""
    scope = await open_scope(context, args)
    sql = _SEARCHES[args.field][scope.tracks_from_totals]
    params: dict[str, Any] = {
        **scope.params,
        "pattern": like_pattern(args.query),
        "limit": args.limit,
    }
    rows = list((await context.session.execute(text(sql), params)).all())
    matches = [
        SearchMatch(
            track_id=row[0],
            name=row[1],
            artist=row[2],
            album=row[3],
            kind=row[4],
            plays=row[5],
            skips=row[6],
            hours=hours(row[7]),
            first_played_at=row[8],
            last_played_at=row[9],
        )
        for row in rows
    ]
    tracks, plays, skips, ms = rows[0][10:14] if rows else (0, 0, 0, 0)
    return SearchResult(
        window=scope.window.view,
        query=args.query,
        field=args.field,
        totals=SearchTotals(plays=plays, skips=skips, hours=hours(ms), tracks=tracks),
        matches=matches,
    )
