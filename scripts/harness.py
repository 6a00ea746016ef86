"""Shared plumbing of the collector soak and benchmark scripts.

A throwaway database (on ``TEST_DATABASE_URL`` when set, else an embedded server in a
temporary folder), a Spotify stand-in process with simulated listeners and fault
controls, users connected to it through the real OAuth flow, collector processes, and a
check of how fast the machine is running.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from playlog.crypto import TokenCipher
from playlog.db.engine import create_engine, create_sessionmaker
from playlog.db.migrate import upgrade
from playlog.spotify.stand_in import StandInConfig
from playlog.testing.postgres import find_server
from playlog.testing.processes import free_port, playlog_command, wait_for_status
from playlog.testing.spotify import sign_in_and_connect


def stop_like_ctrl_c_on_sigterm() -> None:
    """Let SIGTERM (``kill``, a job's timeout) stop a script as Ctrl-C does: the running
    coroutine is cancelled and its cleanup runs, so no embedded server, scratch database
    or generated export is left behind. Ctrl-C is restored first: a shell starts a
    background job with SIGINT ignored, and asyncio only cancels on it when it is not."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))


@dataclass
class Database:
    url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]


@asynccontextmanager
async def scratch_database() -> AsyncIterator[Database]:
    with (
        tempfile.TemporaryDirectory(prefix="playlog-bench-") as scratch,
        ExitStack() as stack,
    ):
        # Starting an embedded server blocks and runs an event loop of its own: not on
        # this loop's thread.
        server = await asyncio.to_thread(stack.enter_context, find_server(Path(scratch)))
        url = await server.create_database()
        engine = create_engine(url, pool_size=10)
        try:
            await upgrade(engine)
            yield Database(url, engine, create_sessionmaker(engine))
        finally:
            await engine.dispose()
            await server.drop_created()


@dataclass
class StandIn:
    process: subprocess.Popen[bytes]
    url: str
    accounts: list[str]

    def control(self, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
        response = httpx.post(f"{self.url}/_control/{path}", json=body or {}, timeout=30)
        response.raise_for_status()
        result: dict[str, object] = response.json()
        return result

    def served(self, account: str) -> dict[str, list[dict[str, str]]]:
        response = httpx.get(f"{self.url}/_control/served/{account}", timeout=60)
        response.raise_for_status()
        result: dict[str, list[dict[str, str]]] = response.json()
        return result

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def start_stand_in(listeners: int, speed: float, history_hours: float) -> StandIn:
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own command
        [
            *playlog_command(),
            "spotify-stand-in",
            "--port",
            str(port),
            "--listeners",
            str(listeners),
            "--speed",
            str(speed),
            "--history-hours",
            str(history_hours),
            "--enable-control",
        ],
        env={**os.environ, "LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_status(f"{url}/v1/me", 401, timeout=120)
    accounts = ["demo-listener"] + [f"listener-{n:04d}" for n in range(1, listeners)]
    return StandIn(process, url, accounts)


async def connect_users(
    database: Database, stand_in: StandIn, cipher: TokenCipher, accounts: list[str] | None = None
) -> dict[str, uuid.UUID]:
    """Each account (default: all) signs in on the stand-in through the OAuth flow.

    Signing in again reconnects a returning account, as the api's callback does.
    """
    users: dict[str, uuid.UUID] = {}
    async with httpx.AsyncClient(base_url=stand_in.url, timeout=30) as http:
        for account in accounts or stand_in.accounts:
            users[account] = await sign_in_and_connect(
                http, StandInConfig(), account, database.sessionmaker, cipher
            )
    return users


@dataclass
class Collectors:
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="playlog-logs-")))

    def start(self, name: str) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "playlog_collector"],
            env={**self.env, "COLLECTOR_ID": name},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self, name: str) -> None:
        self.processes[name].send_signal(signal.SIGKILL)
        self.processes[name].wait()

    def stop_all(self) -> dict[str, float]:
        """SIGTERM every collector; returns the seconds each took to exit."""
        started = time.monotonic()
        for process in self.processes.values():
            process.terminate()
        took = {}
        for name, process in self.processes.items():
            process.wait(timeout=60)
            took[name] = time.monotonic() - started
        return took


def collector_env(database: Database, stand_in: StandIn, key: str, **extra: str) -> dict[str, str]:
    config = StandInConfig()
    return {
        **os.environ,
        "DATABASE_URL": database.url,
        "TOKEN_ENCRYPTION_KEY": key,
        "SPOTIFY_CLIENT_ID": config.client_id,
        "SPOTIFY_CLIENT_SECRET": config.client_secret,
        "SPOTIFY_API_BASE_URL": f"{stand_in.url}/v1",
        "SPOTIFY_ACCOUNTS_BASE_URL": stand_in.url,
        "LOG_LEVEL": "WARNING",
        "LOG_DB_LEVEL": "WARNING",
        **extra,
    }


# Fixed work for machine_check: a pure-Python loop, and a grouping the database does alone
# on the CPU (the series comes from the select list, row by row: as a FROM item it would be
# stored first, and past work_mem in a temporary file, which measured the disk too).
_CHECK_ROUNDS = 7
_CHECK_SQL = (
    "SELECT count(*) FROM (SELECT i % 1000, count(*), sum(i)"
    " FROM (SELECT generate_series(1, 500000) AS i) s GROUP BY 1) g"
)


def _python_work() -> int:
    return sum(i * i for i in range(500_000))


async def machine_check(engine: AsyncEngine) -> str:
    """How fast this machine runs right now: medians of fixed work in Python and in
    PostgreSQL, in ms. A shared 2-core machine's speed drifts by hour (the same benchmark
    has measured twice as slow on a slow hour), so each benchmark prints this before and
    after its figures: runs compare fairly only at similar checks."""
    python, sql = [], []
    async with engine.connect() as connection:
        for _ in range(_CHECK_ROUNDS):
            started = time.perf_counter()
            _python_work()
            python.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await connection.execute(text(_CHECK_SQL))
            sql.append((time.perf_counter() - started) * 1000)
    return (
        f"machine check: Python {statistics.median(python):.0f} ms, "
        f"PostgreSQL {statistics.median(sql):.0f} ms (fixed work, medians of {_CHECK_ROUNDS}; "
        "lower is faster)"
    )
