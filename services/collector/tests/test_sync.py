"""Initial sync and polling against the Spotify stand-in, one claimed run at a time."""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from playlog.crypto import TokenCipher
from playlog.db.models import CoverageGap, JobRun, Play, SpotifyToken, SyncCheckpoint, Track
from playlog.history.identity import local_track_id
from playlog.spotify.client import SpotifyClient
from playlog.spotify.stand_in.state import StandInState
from playlog.spotify.tokens import UserTokens
from playlog.testing.spotify import (
    Connect,
    listed_plays,
    listen_until_new_plays,
    served_plays,
    stored_plays,
)
from playlog_collector import claims
from playlog_collector.claims import Claim, Outcome, WorkKind
from playlog_collector.settings import CollectorSettings
from playlog_collector.sync import API_WINDOW, SyncContext, run

OWNER = "worker-1"
RunKind = Callable[[WorkKind], Awaitable[tuple[Claim, Outcome]]]
LEASE = timedelta(seconds=60)


async def claim_and_run(
    committed: async_sessionmaker[AsyncSession],
    settings: CollectorSettings,
    spotify: SpotifyClient,
    cipher: TokenCipher,
    kind: WorkKind,
) -> tuple[Claim, Outcome]:
    """Claim the one due user for ``kind``, run it and release it, as the worker does."""
    async with committed.begin() as session:
        claimed = await claims.claim(session, OWNER, kind, 10, LEASE)
    assert len(claimed) == 1, claimed
    claim = claimed[0]
    context = SyncContext(
        settings=settings,
        sessionmaker=committed,
        client=spotify,
        tokens=UserTokens(committed, cipher, spotify, claim.user_id),
        rng=random.Random(1),
    )
    outcome = await run(context, claim)
    async with committed.begin() as session:
        await claims.release(session, claim, outcome)
    return claim, outcome


async def make_due(committed: async_sessionmaker[AsyncSession], user_id: uuid.UUID) -> None:
    async with committed.begin() as session:
        await session.execute(
            update(SyncCheckpoint)
            .where(SyncCheckpoint.user_id == user_id)
            .values(next_run_at=datetime.now(UTC) - timedelta(seconds=1))
        )


async def checkpoint_of(
    committed: async_sessionmaker[AsyncSession], user_id: uuid.UUID
) -> SyncCheckpoint:
    async with committed() as session:
        row = await session.get(SyncCheckpoint, user_id)
    assert row is not None
    return row


@pytest.fixture
def run_kind(
    committed: async_sessionmaker[AsyncSession],
    collector_settings: CollectorSettings,
    spotify: SpotifyClient,
    cipher: TokenCipher,
) -> RunKind:
    async def run_one(kind: WorkKind) -> tuple[Claim, Outcome]:
        return await claim_and_run(committed, collector_settings, spotify, cipher, kind)

    return run_one


async def test_initial_sync_stores_the_whole_window_then_polls_take_over(
    connect: Connect,
    committed: async_sessionmaker[AsyncSession],
    stand_in_state: StandInState,
    run_kind: RunKind,
) -> None:
    user_id = await connect("listener-a")
    _, outcome = await run_kind("initial_sync")

    window = listed_plays(stand_in_state, "listener-a")[-API_WINDOW:]
    assert await stored_plays(committed, user_id) == window
    assert outcome.job_status == "success"
    assert outcome.stats["inserted"] == API_WINDOW, repr(outcome.stats)
    assert outcome.stats["stop_reason"] == "empty_batch"
    checkpoint = await checkpoint_of(committed, user_id)
    assert checkpoint.initial_sync_completed_at is not None
    assert checkpoint.initial_sync_cursor_ms is None
    assert checkpoint.initial_sync_earliest_played_at == window[0][1]
    assert checkpoint.latest_played_at == window[-1][1]
    assert checkpoint.status == "idle"
    assert checkpoint.lease_owner is None
    assert checkpoint.next_run_at is not None

    # Some simulated time later: only the new plays are fetched and stored.
    new = listen_until_new_plays(stand_in_state, "listener-a", after=window[-1][1])
    await make_due(committed, user_id)
    _, polled = await run_kind("poll")
    assert polled.job_status == "success"
    assert polled.stats["inserted"] == len(new)
    assert polled.stats["duplicates"] == 0
    assert polled.stats["gaps"] == 0
    assert await stored_plays(committed, user_id) == window + new
    assert await stored_plays(committed, user_id) == served_plays(stand_in_state, "listener-a")
    assert (await checkpoint_of(committed, user_id)).latest_played_at == new[-1][1]


async def test_poll_after_long_downtime_records_the_gap_it_cannot_fill(
    connect: Connect,
    committed: async_sessionmaker[AsyncSession],
    stand_in_state: StandInState,
    run_kind: RunKind,
) -> None:
    user_id = await connect("listener-b")
    await run_kind("initial_sync")
    cursor = (await checkpoint_of(committed, user_id)).latest_played_at
    assert cursor is not None

    stand_in_state.clock.jump(3 * 86_400)  # far more than 50 plays
    await make_due(committed, user_id)
    _, outcome = await run_kind("poll")

    assert outcome.stats["inserted"] == API_WINDOW
    assert outcome.stats["gaps"] == 1
    stored = await stored_plays(committed, user_id)
    async with committed() as session:
        gap = (
            await session.scalars(select(CoverageGap).where(CoverageGap.user_id == user_id))
        ).one()
    assert gap.gap_from == cursor
    first_after_gap = min(played_at for _, played_at in stored if played_at > cursor)
    assert gap.gap_to == first_after_gap
    # Every play the collector missed lies inside the recorded gap.
    missing = set(listed_plays(stand_in_state, "listener-b")) - set(stored)
    missing_since_connect = {play for play in missing if play[1] > cursor}
    assert missing_since_connect
    assert all(gap.gap_from < played_at < gap.gap_to for _, played_at in missing_since_connect)


async def test_fetching_a_page_twice_stores_nothing_twice(
    connect: Connect,
    committed: async_sessionmaker[AsyncSession],
    stand_in_state: StandInState,
    run_kind: RunKind,
) -> None:
    """A crash after storing plays but before the next poll re-reads them: no duplicates."""
    user_id = await connect("listener-a")
    await run_kind("initial_sync")
    before = await stored_plays(committed, user_id)
    async with committed.begin() as session:
        await session.execute(
            update(SyncCheckpoint)
            .where(SyncCheckpoint.user_id == user_id)
            .values(latest_played_at=before[10][1], next_run_at=None)
        )
    _, outcome = await run_kind("poll")
    assert outcome.stats["inserted"] == 0
    assert outcome.stats["duplicates"] == len(before) - 11
    assert await stored_plays(committed, user_id) == before


async def test_a_play_an_export_already_holds_is_not_counted_twice(
    connect: Connect,
    committed: async_sessionmaker[AsyncSession],
    stand_in_state: StandInState,
    run_kind: RunKind,
) -> None:
    user_id = await connect("listener-c")
    window = listed_plays(stand_in_state, "listener-c")[-API_WINDOW:]
    by_id, by_name, after_skip = window[-1], window[-2], window[-3]
    catalog = {t.id: t for t in stand_in_state.catalog.tracks}
    named = catalog[by_name[0]]
    name_only_id = local_track_id(named.artists[0].name.upper(), named.name, None)
    async with committed.begin() as session:
        for track_id, name in (
            (name_only_id, named.name),
            (by_id[0], catalog[by_id[0]].name),
            (after_skip[0], catalog[after_skip[0]].name),
        ):
            await session.execute(
                insert(Track)
                .values(track_id=track_id, name=name, source="import_zip")
                .on_conflict_do_nothing()
            )
        # The extended export's row of the same play ends 3 s later (seconds precision).
        session.add_all(
            [
                Play(
                    user_id=user_id,
                    played_at=by_id[1] + timedelta(seconds=3),
                    track_id=by_id[0],
                    ms_played=200_000,
                    source="import_zip",
                    source_format="extended",
                ),
                # A skip of the same item 2 s from a polled play is a playback of its
                # own: Spotify lists only plays of 30 s or more.
                Play(
                    user_id=user_id,
                    played_at=after_skip[1] - timedelta(seconds=2),
                    track_id=after_skip[0],
                    ms_played=12_000,
                    source="import_zip",
                    source_format="extended",
                ),
                # An account-data row knows names only, to the minute.
                Play(
                    user_id=user_id,
                    played_at=by_name[1].replace(second=0, microsecond=0),
                    track_id=name_only_id,
                    ms_played=180_000,
                    source="import_zip",
                    source_format="account_data",
                ),
            ]
        )
    await _link_artist(committed, name_only_id, named.artists[0].name)

    _, outcome = await run_kind("initial_sync")
    assert outcome.stats["cross_source"] == 2
    assert outcome.stats["inserted"] == API_WINDOW - 2
    async with committed() as session:
        api_rows = set(
            await session.scalars(
                select(Play.track_id).where(
                    Play.user_id == user_id,
                    Play.source == "spotify_api",
                    Play.played_at.in_([by_id[1], by_name[1]]),
                )
            )
        )
    assert api_rows == set()
    async with committed() as session:
        polled = await session.scalar(
            select(Play.track_id).where(
                Play.user_id == user_id,
                Play.source == "spotify_api",
                Play.played_at == after_skip[1],
            )
        )
    assert polled == after_skip[0]


async def _link_artist(
    committed: async_sessionmaker[AsyncSession], track_id: str, artist_name: str
) -> None:
    from playlog.db.models import Artist, TrackArtist
    from playlog.history.identity import local_artist_id

    artist_id = local_artist_id(artist_name)
    async with committed.begin() as session:
        if await session.get(Artist, artist_id) is None:
            session.add(Artist(artist_id=artist_id, name=artist_name))
            await session.flush()
        session.add(TrackArtist(track_id=track_id, artist_id=artist_id, position=0))


async def test_rate_limit_beyond_the_cap_reschedules_at_retry_after(
    connect: Connect,
    committed: async_sessionmaker[AsyncSession],
    stand_in_state: StandInState,
    run_kind: RunKind,
) -> None:
    user_id = await connect("listener-a")
    stand_in_state.faults.throttle_until = float("inf")
    stand_in_state.faults.retry_after_seconds = 3600
    claim, outcome = await run_kind("initial_sync")

    assert outcome.job_status == "error"
    assert outcome.stats["rate_limits"] == 1
    assert outcome.error is not None
    assert "3600" in outcome.error
    checkpoint = await checkpoint_of(committed, user_id)
    assert checkpoint.next_run_at is not None
    assert checkpoint.next_run_at - claim.claimed_at >= timedelta(seconds=3600)
    assert checkpoint.initial_sync_completed_at is None  # resumes later
    assert checkpoint.consecutive_failures == 0
    async with committed() as session:
        job = await session.get(JobRun, claim.job_run_id)
    assert job is not None
    assert job.status == "error"
    assert job.stats["rate_limits"] == 1


async def test_server_errors_leave_an_error_row_and_back_off(
    connect: Connect,
    committed: async_sessionmaker[AsyncSession],
    stand_in_state: StandInState,
    run_kind: RunKind,
) -> None:
    user_id = await connect("listener-a")
    stand_in_state.faults.errors_remaining = 100
    stand_in_state.faults.error_status = 503
    claim, _ = await run_kind("initial_sync")

    async with committed() as session:
        job = await session.get(JobRun, claim.job_run_id)
    assert job is not None
    assert job.status == "error"
    assert job.finished_at is not None
    assert job.error is not None
    assert "503" in job.error
    assert job.stats["requests"] == 3  # the retry policy's attempts
    checkpoint = await checkpoint_of(committed, user_id)
    assert checkpoint.status == "error"
    assert checkpoint.consecutive_failures == 1
    assert checkpoint.next_run_at is not None
    assert checkpoint.next_run_at - claim.claimed_at >= timedelta(seconds=50)

    # The next failure waits about twice as long.
    await make_due(committed, user_id)
    second, _ = await run_kind("initial_sync")
    checkpoint = await checkpoint_of(committed, user_id)
    assert checkpoint.consecutive_failures == 2
    assert checkpoint.next_run_at is not None
    assert checkpoint.next_run_at - second.claimed_at >= timedelta(seconds=100)


async def test_revoked_access_needs_reauth_and_is_never_claimed(
    connect: Connect,
    committed: async_sessionmaker[AsyncSession],
    stand_in_state: StandInState,
    run_kind: RunKind,
) -> None:
    user_id = await connect("listener-b")
    stand_in_state.revoke("listener-b")
    _, outcome = await run_kind("initial_sync")

    assert outcome.job_status == "error"
    assert outcome.error is not None
    assert "reconnect" in outcome.error.lower()
    checkpoint = await checkpoint_of(committed, user_id)
    assert checkpoint.status == "needs_reauth"
    async with committed() as session:
        token = await session.get(SpotifyToken, user_id)
    assert token is not None
    assert token.status == "needs_reauth"
    await make_due(committed, user_id)
    async with committed.begin() as session:
        assert await claims.claim(session, OWNER, "initial_sync", 10, LEASE) == []
        assert await claims.claim(session, OWNER, "poll", 10, LEASE) == []


async def test_a_worker_that_lost_its_lease_writes_nothing(
    connect: Connect,
    committed: async_sessionmaker[AsyncSession],
    collector_settings: CollectorSettings,
    spotify: SpotifyClient,
    cipher: TokenCipher,
) -> None:
    user_id = await connect("listener-c")
    async with committed.begin() as session:
        (claim,) = await claims.claim(session, OWNER, "initial_sync", 10, LEASE)
        # Our lease expired while we waited, and another replica took the user.
        await session.execute(
            update(SyncCheckpoint)
            .where(SyncCheckpoint.user_id == user_id)
            .values(lease_owner="another-replica")
        )
    context = SyncContext(
        settings=collector_settings,
        sessionmaker=committed,
        client=spotify,
        tokens=UserTokens(committed, cipher, spotify, user_id),
        rng=random.Random(1),
    )
    outcome = await run(context, claim)
    assert outcome.job_status == "error"
    assert outcome.error is not None
    assert "no longer held" in outcome.error
    assert await stored_plays(committed, user_id) == []
    checkpoint = await checkpoint_of(committed, user_id)
    assert checkpoint.latest_played_at is None
    assert checkpoint.lease_owner == "another-replica"
