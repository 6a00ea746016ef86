"""Receiving PostgreSQL notifications in tests, on a connection of their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url


@asynccontextmanager
async def notifications(database_url: str, channel: str) -> AsyncIterator[asyncio.Queue[str]]:
    """The payloads of ``NOTIFY`` on ``channel`` while the block runs. They arrive only
    when the sending transaction really commits, so the sender must not be a test's
    rolled-back session."""
    url = make_url(database_url).set(drivername="postgresql")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    received: asyncio.Queue[str] = asyncio.Queue()
    try:
        await connection.add_listener(channel, lambda *args: received.put_nowait(args[3]))
        yield received
    finally:
        await connection.close()
