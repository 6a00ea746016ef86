"""Sync-now and new imports: LISTEN for the api's notifications so a request is picked
up in moments.

The listening connection is reopened after a failure; while it is down the scheduler's
periodic scan still finds the request (``next_run_at`` was set to now), only later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from playlog.db.models.imports import IMPORT_CHANNEL
from playlog.db.models.sync import SYNC_CHANNEL

log = logging.getLogger(__name__)
# How often the idle listening connection is checked, and the wait before reconnecting.
CHECK_SECONDS = 30.0
RECONNECT_SECONDS = 2.0
_CHANNELS = (SYNC_CHANNEL, IMPORT_CHANNEL)


async def listen_for_sync_requests(
    engine: AsyncEngine, on_request: Callable[[str], None], stopping: asyncio.Event
) -> None:
    while not stopping.is_set():
        try:
            await _listen(engine, on_request, stopping)
        except Exception as exc:
            log.warning("sync-now listener lost its connection: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), RECONNECT_SECONDS)


async def _listen(
    engine: AsyncEngine, on_request: Callable[[str], None], stopping: asyncio.Event
) -> None:
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection  # an asyncpg connection

        def deliver(_connection: object, _pid: int, _channel: str, payload: str) -> None:
            on_request(payload)

        for channel in _CHANNELS:
            await driver.add_listener(channel, deliver)
        # Anything requested while we were not listening is found by the next scan.
        on_request("")
        try:
            while not stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), CHECK_SECONDS)
                # On the driver directly: a SQLAlchemy execute would open a transaction,
                # and notifications wait until a listener's transaction ends.
                await driver.execute("SELECT 1")
        finally:
            for channel in _CHANNELS:
                with contextlib.suppress(Exception):
                    await driver.remove_listener(channel, deliver)
