"""``history_podcasts``: podcast and audiobook listening, which music lists leave out.

Episodes are ``tracks.kind = 'episode'`` with their show in ``show_name``; audiobook
chapters are ``kind = 'audiobook'`` with the book's title in ``show_name`` (the export
importer fills it from ``audiobook_title``; ``album_name`` is the fallback should another
writer use it). Spoken word is measured in hours first: one play of a two-hour episode
outweighs ten plays of a short one, so lists are ordered by listening time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from playlog_api.history.discoveries import utc_instant
from playlog_api.history.schemas import LimitedWindowArgs, hours
from playlog_api.history.totals import Scope, open_scope
from playlog_api.history.window import WindowView
from playlog_api.tools.registry import ToolContext, tool


class ShowListening(BaseModel):
    show: str | None = Field(description="The show's name; null when the row had none.")
    plays: int
    hours: float
    episodes: int = Field(description="Distinct episodes played.")
    last_played_at: datetime


class EpisodeListening(BaseModel):
    track_id: str
    name: str
    show: str | None
    plays: int
    hours: float
    last_played_at: datetime


class PodcastTotals(BaseModel):
    plays: int
    hours: float = Field(description="Listening time of every episode row, skips included.")
    shows: int
    episodes: int


class BookListening(BaseModel):
    book: str | None
    plays: int
    hours: float
    chapters: int = Field(description="Distinct chapters played.")
    last_played_at: datetime


class AudiobookListening(BaseModel):
    plays: int
    hours: float
    books: int
    chapters: int
    top_books: list[BookListening]


class Podcasts(BaseModel):
    window: WindowView
    totals: PodcastTotals
    shows: list[ShowListening] = Field(description="By listening hours.")
    episodes: list[EpisodeListening] = Field(description="By listening hours.")
    audiobooks: AudiobookListening


def _spoken_sql(scope: Scope) -> str:
    # One pass over the window's per-track totals, then one row per kind.
    return f"""
        WITH t AS MATERIALIZED (
            SELECT t.track_id, t.plays, t.listening_ms, t.last_played_at, l.kind, l.name,
                coalesce(l.show_name, l.album_name) AS show
            FROM ({scope.tracks}) t
            JOIN track_lookup l ON l.track_id = t.track_id AND l.kind IN ('episode', 'audiobook')
        ),
        shows AS MATERIALIZED (
            SELECT kind, show, sum(plays) AS plays, sum(listening_ms) AS listening_ms,
                count(*) FILTER (WHERE plays > 0) AS items,
                max(last_played_at) AS last_played_at
            FROM t GROUP BY kind, show HAVING sum(plays) > 0
        )
        SELECT k.kind,
            (SELECT coalesce(sum(plays), 0) FROM t WHERE t.kind = k.kind),
            (SELECT coalesce(sum(listening_ms), 0) FROM t WHERE t.kind = k.kind),
            (SELECT count(*) FROM shows s WHERE s.kind = k.kind),
            (SELECT count(*) FROM t WHERE t.kind = k.kind AND t.plays > 0),
            (SELECT coalesce(json_agg(x ORDER BY x.listening_ms DESC, x.plays DESC, x.show),
                             '[]')
             FROM (SELECT * FROM shows s WHERE s.kind = k.kind
                   ORDER BY listening_ms DESC, plays DESC, show LIMIT :limit) x),
            (SELECT coalesce(json_agg(x ORDER BY x.listening_ms DESC, x.plays DESC, x.name,
                                      x.track_id), '[]')
             FROM (SELECT * FROM t WHERE t.kind = k.kind AND t.plays > 0
                   ORDER BY listening_ms DESC, plays DESC, name, track_id LIMIT :limit) x)
        FROM (VALUES ('episode'), ('audiobook')) k(kind)"""


async def podcasts(session: AsyncSession, scope: Scope, limit: int) -> Podcasts:
    """Episodes by show and audiobook chapters by book over ``scope``'s window."""
    rows = (await session.execute(text(_spoken_sql(scope)), {**scope.params, "limit": limit})).all()
    kinds: dict[str, Any] = {row[0]: row[1:] for row in rows}
    plays, ms, shows, episodes, top_shows, top_episodes = kinds["episode"]
    b_plays, b_ms, books, chapters, top_books, _ = kinds["audiobook"]
    return Podcasts(
        window=scope.window.view,
        totals=PodcastTotals(plays=plays, hours=hours(ms), shows=shows, episodes=episodes),
        shows=[
            ShowListening(
                show=item["show"],
                plays=item["plays"],
                hours=hours(item["listening_ms"]),
                episodes=item["items"],
                last_played_at=utc_instant(item["last_played_at"]),
            )
            for item in top_shows
        ],
        episodes=[
            EpisodeListening(
                track_id=item["track_id"],
                name=item["name"],
                show=item["show"],
                plays=item["plays"],
                hours=hours(item["listening_ms"]),
                last_played_at=utc_instant(item["last_played_at"]),
            )
            for item in top_episodes
        ],
        audiobooks=AudiobookListening(
            plays=b_plays,
            hours=hours(b_ms),
            books=books,
            chapters=chapters,
            top_books=[
                BookListening(
                    book=item["show"],
                    plays=item["plays"],
                    hours=hours(item["listening_ms"]),
                    chapters=item["items"],
                    last_played_at=utc_instant(item["last_played_at"]),
                )
                for item in top_books
            ],
        ),
    )


@tool("history_podcasts", path="podcasts")
async def history_podcasts(context: ToolContext, args: LimitedWindowArgs) -> Podcasts:
    """The user's podcast listening over a window: shows ordered by listening hours (with
    plays, distinct episodes and the last play), the top episodes and totals, plus
    audiobooks by book in a separate block. Plays follow the 30-second rule; hours count
    every row, estimated for API rows without a duration played. Music is left out (see
    history_top_tracks). Default window: the last 90 days."""
    scope = await open_scope(context, args)
    return await podcasts(context.session, scope, args.limit)
