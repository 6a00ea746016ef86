"""Paths the stand-in's 50-play window never takes, against ``httpx.MockTransport`` APIs.

Initial-sync stop conditions and resumption over a deep history (300 plays, 90 days);
polls that follow ``next`` links and stop at the page limit; polls without initial sync.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from playlog.crypto import TokenCipher
from playlog.db.models import Play, SyncCheckpoint
from playlog.spotify.client import RetryPolicy
from playlog.spotify.tokens import UserTokens
from playlog.testing.factories import add_connected_user
from playlog.testing.spotify import mock_spotify
from playlog_collector import claims
from playlog_collector.claims import Outcome, WorkKind
from playlog_collector.settings import CollectorSettings
from playlog_collector.sync import MAX_POLL_PAGES, SyncContext, run

NOW = datetime.now(UTC).replace(microsecond=0)
# One play every 7.2 hours for 90 days, newest first.
HISTORY = [NOW - timedelta(hours=7.2 * n) for n in range(300)]


class DeepHistory:
    """recently-played with ``before`` paging over the whole history; counts requests."""

    def __init__(self) -> None:
        self.requests: list[httpx.URL] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.url)
        before = int(request.url.params.get("before", str(2**53)))
        limit = int(request.url.params.get("limit", "20"))
        older = [moment for moment in HISTORY if moment.timestamp() * 1000 < before][:limit]
        items = [item(HISTORY.index(moment), moment) for moment in older]
        cursors = (
            {
                "after": str(int(older[0].timestamp() * 1000)),
                "before": str(int(older[-1].timestamp() * 1000)),
            }
            if older
            else None
        )
        return httpx.Response(
            200,
            json={
                "items": items,
                "next": None,
                "cursors": cursors,
                "limit": limit,
                "href": str(request.url),
            },
        )


@pytest_asyncio.fixture
async def deep_user(
    committed: async_sessionmaker[AsyncSession], cipher: TokenCipher
) -> AsyncIterator[uuid.UUID]:
    async with committed.begin() as session:
        user = await add_connected_user(session, cipher, "Deep History")
    yield user.id


async def sync_once(
    committed: async_sessionmaker[AsyncSession],
    cipher: TokenCipher,
    settings: CollectorSettings,
    api: Callable[[httpx.Request], httpx.Response],
    kind: WorkKind = "initial_sync",
) -> Outcome:
    async with mock_spotify(api, RetryPolicy(max_attempts=1)) as client:
        async with committed.begin() as session:
            (claim,) = await claims.claim(
                session,
                "w",
                kind,
                1,
                timedelta(minutes=1),
                initial_sync_enabled=settings.initial_sync_enabled,
            )
        context = SyncContext(
            settings=settings,
            sessionmaker=committed,
            client=client,
            tokens=UserTokens(committed, cipher, client, claim.user_id),
            rng=random.Random(0),
        )
        outcome = await run(context, claim)
    async with committed.begin() as session:
        await claims.release(session, claim, outcome)
    return outcome


async def play_count(committed: async_sessionmaker[AsyncSession], user_id: uuid.UUID) -> int:
    async with committed() as session:
        count = await session.scalar(select(func.count()).where(Play.user_id == user_id))
    return count or 0


@pytest.mark.parametrize(
    ("limits", "reason", "requests"),
    [
        ({"initial_sync_max_days": 10}, "max_days", 1),  # 50 plays reach back 15 days
        ({"initial_sync_max_days": 40, "initial_sync_max_requests": 2}, "max_requests", 2),
        ({"initial_sync_max_days": 365}, "empty_batch", 7),  # 300 plays, then nothing
    ],
)
async def test_initial_sync_stops_at_each_limit(
    deep_user: uuid.UUID,
    committed: async_sessionmaker[AsyncSession],
    cipher: TokenCipher,
    collector_settings: CollectorSettings,
    limits: dict[str, int],
    reason: str,
    requests: int,
) -> None:
    api = DeepHistory()
    settings = collector_settings.model_copy(update=limits)
    outcome = await sync_once(committed, cipher, settings, api)
    assert outcome.stats["stop_reason"] == reason
    assert len(api.requests) == requests
    assert await play_count(committed, deep_user) == min(300, 50 * requests)
    async with committed() as session:
        checkpoint = await session.get(SyncCheckpoint, deep_user)
    assert checkpoint is not None
    assert checkpoint.initial_sync_completed_at is not None
    assert checkpoint.latest_played_at == HISTORY[0]


async def test_initial_sync_stops_when_a_page_adds_nothing(
    deep_user: uuid.UUID,
    committed: async_sessionmaker[AsyncSession],
    cipher: TokenCipher,
    collector_settings: CollectorSettings,
) -> None:
    settings = collector_settings.model_copy(update={"initial_sync_max_days": 365})
    await sync_once(committed, cipher, settings, DeepHistory())
    async with committed.begin() as session:
        await session.execute(
            update(SyncCheckpoint)
            .where(SyncCheckpoint.user_id == deep_user)
            .values(initial_sync_completed_at=None, next_run_at=None)
        )
    api = DeepHistory()
    outcome = await sync_once(committed, cipher, settings, api)
    assert outcome.stats["stop_reason"] == "no_progress"
    assert len(api.requests) == 1
    assert outcome.stats["duplicates"] == 50


async def test_an_interrupted_initial_sync_resumes_from_its_saved_cursor(
    deep_user: uuid.UUID,
    committed: async_sessionmaker[AsyncSession],
    cipher: TokenCipher,
    collector_settings: CollectorSettings,
) -> None:
    """The cursor is saved with every page; a restart continues where the last page ended."""
    settings = collector_settings.model_copy(update={"initial_sync_max_days": 365})
    failing_after_two = DeepHistory()

    def flaky(request: httpx.Request) -> httpx.Response:
        if len(failing_after_two.requests) >= 2:
            return httpx.Response(503)
        return failing_after_two(request)

    first = await sync_once(committed, cipher, settings, flaky)
    assert first.job_status == "error"
    assert await play_count(committed, deep_user) == 100
    async with committed.begin() as session:
        checkpoint = await session.get(SyncCheckpoint, deep_user)
        assert checkpoint is not None
        assert checkpoint.initial_sync_completed_at is None
        assert checkpoint.initial_sync_cursor_ms == int(HISTORY[99].timestamp() * 1000)
        checkpoint.next_run_at = None

    api = DeepHistory()
    second = await sync_once(committed, cipher, settings, api)
    assert second.stats["stop_reason"] == "empty_batch"
    assert api.requests[0].params["before"] == str(int(HISTORY[99].timestamp() * 1000))
    assert second.stats["duplicates"] == 0
    assert await play_count(committed, deep_user) == 300


def item(n: int, moment: datetime) -> dict[str, object]:
    return {
        "track": {
            "id": f"{n:022d}",
            "name": f"Song {n}",
            "uri": f"spotify:track:{n:022d}",
            "duration_ms": 180_000,
            "artists": [{"id": "b" * 22, "name": "Band", "uri": "spotify:artist:b"}],
        },
        "played_at": moment.isoformat().replace("+00:00", "Z"),
    }


class ForwardPages:
    """``after`` paging forward in pages of 50 with ``next`` links, over ``total`` plays."""

    def __init__(self, total: int) -> None:
        self.plays = [NOW - timedelta(minutes=4 * n) for n in reversed(range(total))]
        self.requests: list[httpx.URL] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.url)
        after = int(request.url.params.get("after", "0"))
        newer = [m for m in self.plays if m.timestamp() * 1000 > after]
        page = newer[:50]
        next_url = None
        if len(newer) > 50:
            last = int(page[-1].timestamp() * 1000)
            next_url = f"https://api.test/v1/me/player/recently-played?after={last}&limit=50"
        body = {
            "items": [item(self.plays.index(m), m) for m in reversed(page)],
            "next": next_url,
            "cursors": None,
            "limit": 50,
            "href": str(request.url),
        }
        return httpx.Response(200, json=body)


async def test_polls_follow_next_links_until_caught_up(
    deep_user: uuid.UUID,
    committed: async_sessionmaker[AsyncSession],
    cipher: TokenCipher,
    collector_settings: CollectorSettings,
) -> None:
    api = ForwardPages(total=120)
    cursor = api.plays[9]
    async with committed.begin() as session:
        await session.execute(
            update(SyncCheckpoint)
            .where(SyncCheckpoint.user_id == deep_user)
            .values(initial_sync_completed_at=func.now(), latest_played_at=cursor)
        )
    outcome = await sync_once(committed, cipher, collector_settings, api, "poll")
    assert outcome.job_status == "success"
    assert outcome.stats["pages"] == 3
    assert outcome.stats["inserted"] == 110
    assert outcome.stats["gaps"] == 0  # the cursor was reachable: no gap
    assert [url.params.get("after") for url in api.requests[1:]] == [
        str(int(api.plays[59].timestamp() * 1000)),
        str(int(api.plays[109].timestamp() * 1000)),
    ]
    assert await play_count(committed, deep_user) == 110


async def test_a_poll_stops_at_the_page_limit_and_comes_back_soon(
    deep_user: uuid.UUID,
    committed: async_sessionmaker[AsyncSession],
    cipher: TokenCipher,
    collector_settings: CollectorSettings,
) -> None:
    api = ForwardPages(total=2000)
    async with committed.begin() as session:
        await session.execute(
            update(SyncCheckpoint)
            .where(SyncCheckpoint.user_id == deep_user)
            .values(initial_sync_completed_at=func.now(), latest_played_at=api.plays[0])
        )
    outcome = await sync_once(committed, cipher, collector_settings, api, "poll")
    assert outcome.job_status == "partial"
    assert outcome.stats["stop_reason"] == "max_pages"
    assert outcome.stats["pages"] == MAX_POLL_PAGES
    assert outcome.next_run_in is not None
    assert outcome.next_run_in < timedelta(seconds=10)


async def test_without_initial_sync_new_users_are_polled_from_the_latest_plays(
    deep_user: uuid.UUID,
    committed: async_sessionmaker[AsyncSession],
    cipher: TokenCipher,
    collector_settings: CollectorSettings,
) -> None:
    settings = collector_settings.model_copy(update={"initial_sync_enabled": False})
    api = ForwardPages(total=30)
    outcome = await sync_once(committed, cipher, settings, api, "poll")
    assert outcome.job_status == "success"
    assert outcome.stats["inserted"] == 30
    assert "after" not in api.requests[0].params
    async with committed() as session:
        checkpoint = await session.get(SyncCheckpoint, deep_user)
    assert checkpoint is not None
    assert checkpoint.latest_played_at == api.plays[-1]
    assert checkpoint.initial_sync_completed_at is None
