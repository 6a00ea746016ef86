"""Finding a real PostgreSQL server for tests and making throwaway databases on it.

Order: ``TEST_DATABASE_URL`` (any server where the role may CREATE DATABASE), else a
Docker engine through testcontainers, else an embedded server from the pgserver wheel.
"""

from __future__ import annotations

import gc
import logging
import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from playlog.db.embedded import EmbeddedPostgres
from playlog.db.engine import create_engine, to_async_url

log = logging.getLogger(__name__)


@dataclass
class PostgresServer:
    """A server on which tests may create and drop databases."""

    admin_url: URL
    kind: str
    created: list[str] = field(default_factory=list)

    def url_for(self, database: str) -> str:
        return self.admin_url.set(database=database).render_as_string(hide_password=False)

    async def create_database(self) -> str:
        name = f"playlog_test_{uuid.uuid4().hex[:12]}"
        await self._execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.url_for(name)

    async def drop_created(self) -> None:
        while self.created:
            await self._execute(f'DROP DATABASE IF EXISTS "{self.created.pop()}" WITH (FORCE)')

    async def _execute(self, statement: str) -> None:
        engine = create_engine(self.admin_url, pool_size=1).execution_options(
            isolation_level="AUTOCOMMIT"
        )
        try:
            async with engine.connect() as connection:
                await connection.execute(text(statement))
        finally:
            await engine.dispose()


def _docker_engine_available() -> bool:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return False
    try:
        import docker
    except ImportError:
        return False
    # docker-py leaks its socket when the daemon does not answer; reap it here, where
    # the warning is expected, instead of in whichever test runs next.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client = docker.from_env(timeout=3)
            try:
                client.ping()
            finally:
                client.close()
        except Exception:  # no configuration, or no daemon answering: no Docker here
            return False
        finally:
            gc.collect()
    return True


@contextmanager
def find_server(scratch: Path) -> Iterator[PostgresServer]:
    configured = os.environ.get("TEST_DATABASE_URL", "").strip()
    if configured:
        yield PostgresServer(to_async_url(configured), "TEST_DATABASE_URL")
        return
    if _docker_engine_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield PostgresServer(to_async_url(container.get_connection_url()), "docker")
        return
    server = EmbeddedPostgres(scratch)
    server.start()
    try:
        yield PostgresServer(to_async_url(make_url(server.server_url())), "embedded")
    finally:
        server.stop()
