"""Which database a command talks to: DATABASE_URL, else the embedded server."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from playlog.db.embedded import EmbeddedPostgres, data_dir_from_env
from playlog.db.engine import normalize_database_url, with_engine
from playlog.errors import ConfigurationError

T = TypeVar("T")


@contextmanager
def database_url() -> Iterator[str]:
    """Yield a database URL for the duration of a command.

    With DATABASE_URL unset, the embedded server under PLAYLOG_DATA_DIR is started (or
    joined, if another command already runs it) and released when the command ends.
    """
    configured = os.environ.get("DATABASE_URL", "").strip()
    if configured:
        try:
            url = normalize_database_url(configured)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        yield url
        return
    server = EmbeddedPostgres(data_dir_from_env())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def run_on_database(url: str, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run async database work for a command; connection problems become one-line errors."""
    try:
        return asyncio.run(with_engine(url, work))
    except (DBAPIError, OSError) as exc:
        raise ConfigurationError(f"cannot use the database: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
