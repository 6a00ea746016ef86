"""The embedded PostgreSQL server used when DATABASE_URL is not set.

It lives under ``PLAYLOG_DATA_DIR`` (default ``.data``) and is shared by every
``playlog`` command: the first one starts it, later ones reuse it, and the last one to
exit stops it. The server listens on a Unix socket only, never on a TCP port.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from playlog.errors import ConfigurationError

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

log = logging.getLogger(__name__)

DATABASE_NAME = "playlog"


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self._server: PostgresServer | None = None

    def start(self) -> None:
        try:
            with warnings.catch_warnings():
                # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers,
                # CI); pgserver then uses /tmp/runtime-<uid>, which is what we want.
                warnings.simplefilter("ignore")
                from pgserver.postgres_server import PostgresServer, get_server
        except ImportError:
            raise ConfigurationError(
                "DATABASE_URL is not set and the embedded PostgreSQL is not installed; "
                "set DATABASE_URL or install playlog[embedded]"
            ) from None
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # pgserver logs each command it runs at INFO; keep our output readable.
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        with PostgresServer._lock:
            _forget_dead_handles(self.pgdata / ".handle_pids.json")
        self._server = get_server(self.pgdata, cleanup_mode="stop")
        asyncio.run(self._ensure_database())

    def server_url(self, database: str = "postgres") -> str:
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        return self._server.get_uri(database)

    @property
    def url(self) -> str:
        """URL of the ``playlog`` database on the embedded server."""
        return self.server_url(DATABASE_NAME)

    def stop(self) -> None:
        """Release this process's handle; the server stops when no other command uses it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    async def _ensure_database(self) -> None:
        connection = await asyncpg.connect(self.server_url())
        try:
            exists = await connection.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", DATABASE_NAME
            )
            if not exists:
                await connection.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        finally:
            await connection.close()


def _forget_dead_handles(handles: Path) -> None:
    """Drop processes that died without releasing the server (kill -9, power loss).

    pgserver stops the server when the last registered process releases it; a dead
    process left in its list would keep the server running forever.
    """
    if not handles.exists():
        return
    try:
        pids = [int(pid) for pid in json.loads(handles.read_text())]
    except (ValueError, TypeError):
        pids = []
    alive = [pid for pid in pids if _process_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def data_dir_from_env() -> Path:
    return Path(os.environ.get("PLAYLOG_DATA_DIR", ".data"))
