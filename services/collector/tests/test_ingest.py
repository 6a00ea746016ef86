"""Storing pages: the cross-source rule matches one stored row to one playback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from playlog.db.models import Play, Track
from playlog.spotify.models import PlayHistory
from playlog.testing.factories import add_user
from playlog_collector.ingest import store_page

END = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TRACK_ID = "4uLU6hMCjMI75M1A2tKUQC"


def listed(moment: datetime, duration_ms: int = 60_000) -> PlayHistory:
    return PlayHistory.model_validate(
        {
            "track": {
                "id": TRACK_ID,
                "name": "Short Song",
                "uri": f"spotify:track:{TRACK_ID}",
                "duration_ms": duration_ms,
                "artists": [{"id": "0OdUWJ0sBjDrqHygGUXeCF", "name": "Band"}],
            },
            "played_at": moment,
        }
    )


async def test_a_replay_within_the_window_is_not_swallowed_by_one_export_row(
    db_session: AsyncSession,
) -> None:
    user = await add_user(db_session)
    db_session.add(Track(track_id=TRACK_ID, name="Short Song", source="import_zip"))
    await db_session.flush()
    db_session.add(
        Play(
            user_id=user.id,
            played_at=END,
            track_id=TRACK_ID,
            ms_played=60_000,
            source="import_zip",
            source_format="extended",
        )
    )
    await db_session.flush()

    # The API's row of the exported play (0.4 s off), and the replay a minute later.
    page = [listed(END + timedelta(seconds=62)), listed(END + timedelta(milliseconds=400))]
    result = await store_page(db_session, user.id, page)

    assert result.cross_source == 1
    assert result.inserted == 1
    stored = await db_session.execute(
        select(Play.played_at, Play.source).where(Play.user_id == user.id).order_by(Play.played_at)
    )
    assert stored.all() == [(END, "import_zip"), (END + timedelta(seconds=62), "spotify_api")]


async def test_the_api_fills_in_what_an_export_did_not_know_and_keeps_the_rest(
    db_session: AsyncSession,
) -> None:
    user = await add_user(db_session)
    db_session.add(
        Track(track_id=TRACK_ID, name="Short Song", album_name="Known", source="import_zip")
    )
    await db_session.flush()
    await store_page(db_session, user.id, [listed(END)])
    track = (
        await db_session.execute(
            select(Track.album_name, Track.duration_ms, Track.uri).where(Track.track_id == TRACK_ID)
        )
    ).one()
    assert track == ("Known", 60_000, f"spotify:track:{TRACK_ID}")


async def test_the_same_page_twice_counts_duplicates_and_stores_once(
    db_session: AsyncSession,
) -> None:
    user = await add_user(db_session)
    page = [listed(END), listed(END + timedelta(minutes=5)), listed(END)]
    first = await store_page(db_session, user.id, page)
    second = await store_page(db_session, user.id, page)
    assert (first.inserted, first.duplicates) == (2, 1)
    assert (second.inserted, second.duplicates) == (0, 3)


async def test_a_page_listed_newest_first_estimates_each_play_from_the_one_before(
    db_session: AsyncSession,
) -> None:
    user = await add_user(db_session)
    await store_page(db_session, user.id, [listed(END, duration_ms=200_000)])
    # Three plays ended 60 s apart after it, listed as Spotify lists them: newest first.
    page = [listed(END + timedelta(seconds=s), duration_ms=200_000) for s in (180, 120, 60)]
    result = await store_page(db_session, user.id, page)
    assert result.inserted == 3
    estimates = await db_session.execute(
        select(Play.played_at, Play.ms_estimated)
        .where(Play.user_id == user.id)
        .order_by(Play.played_at)
    )
    # The first play has no previous one: its track's duration.
    assert [ms for _, ms in estimates.all()] == [200_000, 60_000, 60_000, 60_000]


async def test_a_local_file_whose_tags_hold_nuls_is_stored(db_session: AsyncSession) -> None:
    # A local file's names come from its tags, which may end in NULs; Spotify passes them
    # on as \u0000, which PostgreSQL's text cannot hold: the page failed on every poll.
    raw = (
        b'{"track": {"id": null, "is_local": true, "name": "Demo\\u0000",'
        b' "uri": "spotify:local:Me:Tape:Demo:200", "duration_ms": 200000,'
        b' "album": {"name": "Tape\\u0000\\u0000"}, "artists": [{"name": "M\\u0000e"}]},'
        b' "played_at": "2026-05-01T12:00:00Z"}'
    )
    result = await store_page(
        db_session, (await add_user(db_session)).id, [PlayHistory.model_validate_json(raw)]
    )
    assert result.inserted == 1
    stored = await db_session.execute(
        select(Track.name, Track.album_name).join(Play, Play.track_id == Track.track_id)
    )
    assert stored.all() == [("Demo\ufffd", "Tape\ufffd\ufffd")]
