"""One claimed run: an incremental poll or an initial sync of one user.

Plays and the cursor that covers them are committed together, page by page, so the
cursor never runs ahead of stored plays and a crash costs at most a re-fetch (the
duplicates are absorbed by the primary key). The job run and the checkpoint's status are
written by the caller in transactions of their own, so a failure stays visible.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from playlog.db.models import CoverageGap, SyncCheckpoint
from playlog.spotify.client import SpotifyClient, track_calls
from playlog.spotify.errors import SpotifyError, SpotifyRateLimited
from playlog.spotify.models import RecentlyPlayed
from playlog.spotify.tokens import ReauthRequired, UserTokens
from playlog_collector.claims import Claim, LeaseLost, Outcome, jittered, renew
from playlog_collector.ingest import PageResult, store_page
from playlog_collector.settings import CollectorSettings

log = logging.getLogger(__name__)
# Spotify keeps about this many plays reachable; a full page after the cursor means
# plays in between may have fallen out of reach.
API_WINDOW = 50
# Pages one poll follows at most; a poll is far from this in practice (50 plays fit one).
MAX_POLL_PAGES = 20
FAILURE_BACKOFF_START = 60.0
# False once an admin restarted the initial sync during the run (started_at reset): the
# run must not then record progress or completion of the sync that was thrown away.
_initial_sync_running = SyncCheckpoint.initial_sync_started_at.is_not(None)


@dataclass
class RunStats:
    fetched: int = 0
    inserted: int = 0
    duplicates: int = 0
    cross_source: int = 0
    pages: int = 0
    requests: int = 0
    rate_limits: int = 0
    gaps: int = 0
    stop_reason: str | None = None
    pickup_latency_ms: int | None = None

    def add(self, page: PageResult) -> None:
        self.pages += 1
        self.fetched += page.fetched
        self.inserted += page.inserted
        self.duplicates += page.duplicates
        self.cross_source += page.cross_source

    def as_json(self) -> dict[str, object]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass
class SyncContext:
    settings: CollectorSettings
    sessionmaker: async_sessionmaker[AsyncSession]
    client: SpotifyClient
    tokens: UserTokens
    rng: random.Random


async def run(context: SyncContext, claim: Claim) -> Outcome:
    """Do the claimed work and say how it ended; never raises for expected failures."""
    stats = RunStats()
    if claim.requested_at is not None:
        latency = claim.claimed_at - claim.requested_at
        stats.pickup_latency_ms = int(latency / timedelta(milliseconds=1))
    with track_calls() as calls:
        try:
            if claim.kind == "initial_sync":
                await _initial_sync(context, claim, stats)
                complete = True
            else:
                complete = await _poll(context, claim, stats)
            # A poll cut short is known to be behind: continue soon.
            interval = context.settings.collector_interval_seconds if complete else 5.0
            outcome = Outcome(
                "success" if complete else "partial",
                {},
                None,
                jittered(interval, context.rng),
                "idle",
            )
        except SpotifyRateLimited as exc:
            stats.stop_reason = "rate_limited"
            wait = max(timedelta(seconds=exc.retry_after_seconds), timedelta(seconds=1))
            outcome = Outcome(
                "partial" if stats.pages else "error",
                {},
                f"Spotify rate limit: retry after {exc.retry_after_seconds:.0f}s",
                wait + jittered(5, context.rng),
                "idle",
            )
        except ReauthRequired as exc:
            outcome = Outcome("error", {}, str(exc), None, "needs_reauth")
        except LeaseLost as exc:
            log.warning("%s", exc)
            outcome = Outcome("error", {}, str(exc), None, "idle")
        except SpotifyError as exc:
            outcome = Outcome("error", {}, str(exc), _backoff(context, claim), "error", failed=True)
        except Exception as exc:
            # A database outage or a bug: recorded with the stats so far, backed off.
            log.exception("%s failed", claim.kind)
            message = f"{type(exc).__name__}: {exc}"[:500]
            outcome = Outcome("error", {}, message, _backoff(context, claim), "error", failed=True)
    stats.requests = calls.requests
    stats.rate_limits = calls.rate_limited
    return replace(outcome, stats=stats.as_json())


def _backoff(context: SyncContext, claim: Claim) -> timedelta:
    """Doubling wait after each consecutive failure of this user, capped."""
    seconds = min(
        context.settings.collector_max_backoff_seconds,
        FAILURE_BACKOFF_START * 2 ** min(claim.consecutive_failures, 20),
    )
    return jittered(seconds, context.rng)


async def _poll(context: SyncContext, claim: Claim, stats: RunStats) -> bool:
    """Fetch everything after the cursor, following ``next``; True when caught up."""
    cursor = claim.latest_played_at
    page = await context.client.recently_played(context.tokens, after=cursor, limit=API_WINDOW)
    first = True
    while True:
        gap = None
        # A full first page with nothing to follow: the window starts after the cursor.
        # (A `next` link means the API pages forward from the cursor: it is reachable.)
        if first and cursor is not None and len(page.items) >= API_WINDOW and not page.next:
            gap = (cursor, min(item.played_at for item in page.items))
        first = False
        await _store(context, claim, page, stats, gap=gap)
        if not page.items or page.next is None:
            return True
        if stats.pages >= MAX_POLL_PAGES:
            stats.stop_reason = "max_pages"
            return False
        page = await context.client.follow(context.tokens, RecentlyPlayed, page.next)


async def _initial_sync(context: SyncContext, claim: Claim, stats: RunStats) -> None:
    """Page back from now (or the saved cursor) until a stop condition, then mark it done."""
    settings = context.settings
    cutoff = datetime.now(UTC) - timedelta(days=settings.initial_sync_max_days)
    cursor_ms = claim.initial_sync_cursor_ms
    requests = 0
    while True:
        if requests >= settings.initial_sync_max_requests:
            stats.stop_reason = "max_requests"
            break
        before = datetime.fromtimestamp(cursor_ms / 1000, UTC) if cursor_ms else None
        page = await context.client.recently_played(context.tokens, before=before, limit=API_WINDOW)
        requests += 1
        if not page.items:
            stats.stop_reason = "empty_batch"
            break
        oldest = min(item.played_at for item in page.items)
        cursor_ms = int(oldest.timestamp() * 1000)
        result = await _store(context, claim, page, stats, initial_cursor_ms=cursor_ms)
        if result.inserted == 0 and settings.initial_sync_stop_on_no_progress:
            stats.stop_reason = "no_progress"
            break
        if oldest < cutoff:
            stats.stop_reason = "max_days"
            break
    async with context.sessionmaker.begin() as session:
        await renew(
            session,
            claim,
            context.settings.collector_lease,
            initial_sync_cursor_ms=None,
            initial_sync_completed_at=case((_initial_sync_running, func.now()), else_=None),
        )


async def _store(
    context: SyncContext,
    claim: Claim,
    page: RecentlyPlayed,
    stats: RunStats,
    *,
    gap: tuple[datetime, datetime] | None = None,
    initial_cursor_ms: int | None = None,
) -> PageResult:
    """One transaction: the page's plays, the cursor that covers them, a possible gap."""
    if not page.items and gap is None and initial_cursor_ms is None:
        stats.add(PageResult())  # nothing to write: no transaction at all
        return PageResult()
    async with context.sessionmaker.begin() as session:
        result = await store_page(session, claim.user_id, page.items)
        changes: dict[str, object] = {}
        if page.items:
            newest = max(item.played_at for item in page.items)
            changes["latest_played_at"] = func.greatest(SyncCheckpoint.latest_played_at, newest)
        if initial_cursor_ms is not None:
            oldest = datetime.fromtimestamp(initial_cursor_ms / 1000, UTC)
            running = _initial_sync_running
            changes["initial_sync_cursor_ms"] = case((running, initial_cursor_ms), else_=None)
            changes["initial_sync_earliest_played_at"] = case(
                (running, func.least(SyncCheckpoint.initial_sync_earliest_played_at, oldest)),
                else_=None,
            )
        # After the plays: a lost lease raises here and rolls the page back.
        await renew(session, claim, context.settings.collector_lease, **changes)
        if gap is not None:
            stats.gaps += 1
            await session.execute(
                insert(CoverageGap)
                .values(user_id=claim.user_id, gap_from=gap[0], gap_to=gap[1])
                .on_conflict_do_nothing()
            )
            log.warning(
                "possible gap in the history: the API window no longer reaches the cursor",
                extra={"gap_from": gap[0].isoformat(), "gap_to": gap[1].isoformat()},
            )
    stats.add(result)
    return result
