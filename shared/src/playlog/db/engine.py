"""Engine and sessionmaker factories. Nothing here connects until it is used."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

_POSTGRES_DRIVERS = {"postgres", "postgresql", "postgresql+asyncpg"}


def normalize_database_url(url: str) -> str:
    """Return the URL with the asyncpg driver; reject anything that is not PostgreSQL."""
    parsed = to_async_url(url)
    return parsed.render_as_string(hide_password=False)


def to_async_url(url: str | URL) -> URL:
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        raise ValueError("DATABASE_URL is not a valid database URL") from None
    if parsed.drivername not in _POSTGRES_DRIVERS:
        raise ValueError(
            f"DATABASE_URL must be a PostgreSQL URL (postgresql://…), not '{parsed.drivername}'"
        )
    if not parsed.database:
        raise ValueError("DATABASE_URL must name a database")
    return parsed.set(drivername="postgresql+asyncpg")


def create_engine(url: str | URL, *, pool_size: int = 5, echo: bool = False) -> AsyncEngine:
    return create_async_engine(
        to_async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        echo=echo,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after the edge commits.
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def db_now(session: AsyncSession) -> datetime:
    """The database's ``now()``: the start of the current transaction."""
    now: datetime | None = await session.scalar(select(func.now()))
    assert now is not None
    return now


T = TypeVar("T")


async def with_engine(url: str | URL, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run one piece of work on a short-lived engine and return its result (CLI commands)."""
    engine = create_engine(url, pool_size=1)
    try:
        return await work(engine)
    finally:
        await engine.dispose()
