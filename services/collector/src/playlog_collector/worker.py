"""The collector process: for now its lifecycle and heartbeat; work loops plug in here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from playlog.db import heartbeat
from playlog.db.engine import create_engine, create_sessionmaker
from playlog_collector.settings import CollectorSettings

log = logging.getLogger(__name__)
SERVICE = "collector"


class Collector:
    def __init__(
        self,
        settings: CollectorSettings,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.worker_id = settings.collector_id or heartbeat.default_worker_id(SERVICE)
        self.stopping = asyncio.Event()
        self.activity = "idle"

    async def run(self) -> None:
        """Beat until asked to stop, then record the stop. Each beat is its own transaction."""
        async with self.sessionmaker.begin() as session:
            await heartbeat.prune(session)
            await heartbeat.beat(session, self.worker_id, SERVICE, "starting", starting=True)
        log.info("collector started", extra={"worker_id": self.worker_id})
        try:
            while not self.stopping.is_set():
                try:
                    async with self.sessionmaker.begin() as session:
                        await heartbeat.beat(session, self.worker_id, SERVICE, self.activity)
                except Exception:
                    # A database outage must not kill the worker; it beats again later.
                    log.exception("heartbeat failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self.stopping.wait(), self.settings.collector_heartbeat_seconds
                    )
        finally:
            async with self.sessionmaker.begin() as session:
                await heartbeat.mark_stopped(session, self.worker_id)
            log.info("collector stopped", extra={"worker_id": self.worker_id})

    def stop(self) -> None:
        self.stopping.set()


async def serve(settings: CollectorSettings) -> None:
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    collector = Collector(settings, create_sessionmaker(engine))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, collector.stop)
    try:
        await collector.run()
    finally:
        await engine.dispose()
