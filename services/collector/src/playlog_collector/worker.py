"""The collector process: claims due work, runs it concurrently, heartbeats, stops cleanly.

Priority: pending export imports (one at a time, on a thread of their own), initial
syncs (up to INITIAL_SYNC_CONCURRENCY at once), then incremental polls, within
COLLECTOR_CONCURRENCY users at a time. Every user is its own task, so a slow or throttled
user holds one slot and nothing else. A sync-now or import notification (or a finished
task) wakes the scheduler at once; otherwise it scans every COLLECTOR_SCAN_SECONDS.

SIGTERM stops claiming, gives running work a few seconds to finish, then cancels it:
cancelled runs are recorded as abandoned and their users handed back for immediate
pick-up by any replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from playlog.crypto import TokenCipher
from playlog.db import heartbeat
from playlog.db.engine import create_engine, create_sessionmaker
from playlog.db.maintenance import purge_logs
from playlog.dblog import database_logging
from playlog.logging import log_context
from playlog.spotify.client import SpotifyClient
from playlog.spotify.tokens import UserTokens
from playlog_collector import claims
from playlog_collector.claims import Claim, Outcome, WorkKind
from playlog_collector.imports import ImportWorker
from playlog_collector.notify import listen_for_sync_requests
from playlog_collector.settings import CollectorSettings
from playlog_collector.sync import SyncContext, run

log = logging.getLogger(__name__)
SERVICE = "collector"
# Running work (polls and an import alike) gets this long after SIGTERM before it is
# cancelled; recording the abandoned runs and the stop take at most 2 s each after it.
SHUTDOWN_GRACE_SECONDS = 4.0
RELEASE_TIMEOUT_SECONDS = 2.0
PURGE_EVERY = timedelta(days=1)


class Collector:
    def __init__(
        self,
        settings: CollectorSettings,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        spotify: SpotifyClient | None = None,
        engine: AsyncEngine | None = None,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.spotify = spotify
        # The LISTEN connection for sync-now; without an engine the scan interval rules.
        self.engine = engine
        self.worker_id = settings.collector_id or heartbeat.default_worker_id(SERVICE)
        self.cipher = TokenCipher(settings.token_encryption_key.get_secret_value())
        self.stopping = asyncio.Event()
        self.wake = asyncio.Event()
        self.running: dict[asyncio.Task[None], Claim] = {}
        self.activity = "idle"
        self.shutdown_grace = SHUTDOWN_GRACE_SECONDS
        self.rng = random.Random()  # noqa: S311 - scheduling jitter, not security
        self.imports = (
            ImportWorker(settings, engine, sessionmaker, self.worker_id)
            if engine is not None
            else None
        )

    async def run(self) -> None:
        """Work until asked to stop, then record the stop."""
        async with self.sessionmaker.begin() as session:
            await heartbeat.prune(session)
            await heartbeat.beat(session, self.worker_id, SERVICE, "starting", starting=True)
        log.info("collector started", extra={"worker_id": self.worker_id})
        helpers = [
            asyncio.create_task(self._every(self.settings.collector_heartbeat_seconds, self._beat)),
            asyncio.create_task(self._every(PURGE_EVERY.total_seconds(), self._purge_logs)),
        ]
        if self.engine is not None:
            helpers.append(
                asyncio.create_task(
                    listen_for_sync_requests(self.engine, self._sync_requested, self.stopping)
                )
            )
        if self.spotify is None:
            log.warning("SPOTIFY_CLIENT_ID is not set: nobody is polled until it is")
        try:
            await self._schedule()
        finally:
            await self._shutdown()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(RELEASE_TIMEOUT_SECONDS):
                    async with self.sessionmaker.begin() as session:
                        await heartbeat.mark_stopped(session, self.worker_id)
            log.info("collector stopped", extra={"worker_id": self.worker_id})

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    # --- scheduling ------------------------------------------------------------------

    async def _schedule(self) -> None:
        while not self.stopping.is_set():
            self.wake.clear()
            try:
                await self._claim_and_start()
            except Exception:
                # A database outage must not kill the worker; it tries again later.
                log.exception("claiming work failed")
            self._update_activity()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.collector_scan_seconds)

    async def _claim_and_start(self) -> None:
        if self.imports is not None:
            await self.imports.tick(self.wake)
        if self.spotify is None:
            return
        free = self.settings.collector_concurrency - len(self.running)
        if free <= 0:
            return
        if self.settings.initial_sync_enabled:
            initial_running = sum(c.kind == "initial_sync" for c in self.running.values())
            allowed = min(free, self.settings.initial_sync_concurrency - initial_running)
            # Started at once: a failure of the next claim must not strand these.
            free -= self._start(await self._claim("initial_sync", allowed))
        self._start(await self._claim("poll", free))

    def _start(self, claimed: list[Claim]) -> int:
        for claim in claimed:
            task = asyncio.create_task(self._work(claim), name=f"{claim.kind}:{claim.user_id}")
            self.running[task] = claim
            task.add_done_callback(self._finished)
        return len(claimed)

    async def _claim(self, kind: WorkKind, limit: int) -> list[Claim]:
        if limit <= 0:
            return []
        async with self.sessionmaker.begin() as session:
            return await claims.claim(
                session,
                self.worker_id,
                kind,
                limit,
                self.settings.collector_lease,
                initial_sync_enabled=self.settings.initial_sync_enabled,
            )

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.running.pop(task, None)
        self.wake.set()

    def _sync_requested(self, user_id: str) -> None:
        log.debug("sync requested", extra={"user_id": user_id})
        self.wake.set()

    def _update_activity(self) -> None:
        kinds = [claim.kind for claim in self.running.values()]
        parts = [
            f"{kind} {kinds.count(kind)}" for kind in ("initial_sync", "poll") if kind in kinds
        ]
        if self.imports is not None and self.imports.busy:
            parts.insert(0, "import 1")
        if self.spotify is None and not parts:
            self.activity = "idle: Spotify is not configured"
        else:
            self.activity = ", ".join(parts) if parts else "idle"

    # --- one user's run --------------------------------------------------------------

    async def _work(self, claim: Claim) -> None:
        assert self.spotify is not None
        context = SyncContext(
            settings=self.settings,
            sessionmaker=self.sessionmaker,
            client=self.spotify,
            tokens=UserTokens(self.sessionmaker, self.cipher, self.spotify, claim.user_id),
            rng=self.rng,
        )
        with log_context(user_id=str(claim.user_id), job_run_id=str(claim.job_run_id)):
            keeper = asyncio.create_task(self._keep_lease(claim))
            try:
                outcome = await run(context, claim)
            except asyncio.CancelledError:
                outcome = Outcome(
                    "error",
                    {},
                    "abandoned: the collector was stopped during the run",
                    timedelta(0),
                    "idle",
                )
                await asyncio.shield(self._release_with_timeout(claim, outcome))
                raise
            finally:
                keeper.cancel()
            # Shielded: a stop arriving now must not leave the run "running".
            await asyncio.shield(self._release_with_timeout(claim, outcome))
            log.info(
                "%s %s",
                claim.kind,
                outcome.job_status,
                extra={"stats": outcome.stats, "error": outcome.error},
            )

    async def _keep_lease(self, claim: Claim) -> None:
        """Renew the lease while a single call sleeps through retries or a Retry-After.

        Pages renew it too; this covers the time between them. Once the lease is lost the
        run's next write fails its own lease check, so nothing is written without it.
        """
        while True:
            await asyncio.sleep(self.settings.collector_lease_seconds / 3)
            try:
                async with self.sessionmaker.begin() as session:
                    await claims.renew(session, claim, self.settings.collector_lease)
            except claims.LeaseLost:
                log.warning("lost the lease of a running %s", claim.kind)
                return
            except Exception:
                log.exception("renewing a lease failed")

    async def _release_with_timeout(self, claim: Claim, outcome: Outcome) -> None:
        try:
            async with asyncio.timeout(RELEASE_TIMEOUT_SECONDS):
                async with self.sessionmaker.begin() as session:
                    await claims.release(session, claim, outcome)
        except Exception:
            # The lease expires on its own; another replica then picks the user up.
            log.exception("could not record the end of a %s run", claim.kind)

    async def _shutdown(self) -> None:
        # At once, not one after the other: the import and the polls share one grace.
        waits = [self._stop_running()]
        if self.imports is not None:
            waits.append(self.imports.shutdown(self.shutdown_grace))
        await asyncio.gather(*waits)

    async def _stop_running(self) -> None:
        if not self.running:
            return
        self.activity = "stopping"
        tasks = list(self.running)
        _, pending = await asyncio.wait(tasks, timeout=self.shutdown_grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # --- housekeeping ----------------------------------------------------------------

    async def _every(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        while not self.stopping.is_set():
            try:
                await job()
            except Exception:
                log.exception("%s failed", getattr(job, "__name__", "housekeeping"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _beat(self) -> None:
        async with self.sessionmaker.begin() as session:
            await heartbeat.beat(session, self.worker_id, SERVICE, self.activity)

    async def _purge_logs(self) -> None:
        days = self.settings.log_retention_days
        async with self.sessionmaker.begin() as session:
            deleted = await purge_logs(session, timedelta(days=days))
        if deleted:
            log.info("purged %d log records older than %d days", deleted, days)


async def serve(settings: CollectorSettings) -> None:
    # Every running user, the LISTEN connection, claims, heartbeats and the log writer
    # each need a connection at times; a smaller pool would make them queue.
    pool_size = max(settings.database_pool_size, settings.collector_concurrency + 4)
    engine = create_engine(settings.database_url, pool_size=pool_size)
    sessionmaker = create_sessionmaker(engine)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        await stack.enter_async_context(database_logging(SERVICE, settings, sessionmaker))
        spotify = None
        if settings.spotify_configured:
            http = httpx.AsyncClient(timeout=10.0)
            stack.push_async_callback(http.aclose)
            spotify = SpotifyClient.from_settings(settings, http)
        collector = Collector(settings, sessionmaker, spotify=spotify, engine=engine)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, collector.stop)
        await collector.run()
