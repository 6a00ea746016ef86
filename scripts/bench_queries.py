#!/usr/bin/env python3
"""Latency of every history tool for a user with 1,000,000 plays (targets: taste summary
p95 ≤ 100 ms over 90 days and ≤ 500 ms over all time; other tools p95 ≤ 50 ms over 90 days).

Loads the plays through the import path (`playlog import` of a synthetic extended export,
scripts/export_generator.py, deterministic by seed) into a throwaway database, then calls
each tool through the api in-process (`POST /mcp/call` with a personal access token over
an ASGI transport: authentication, validation, SQL and JSON, without network noise) and
prints p50/p95 over a 90-day window (the last 90 days of the data) and over all time.
The user lives in Europe/Berlin. Every tool that takes a zone is then timed again for the
same user moved to Asia/Kolkata (+05:30: the hour totals are rebuilt at minute 30, and the
rebuild is timed), and once with a tz=Asia/Kolkata override for the Berlin user, which
buckets the raw plays (no target: an override into a zone whose hours start at another
minute than the user's is the slow path). A machine check (harness.machine_check) before
and after says how fast this shared machine ran meanwhile: its speed drifts by the hour.
Timing starts after a CHECKPOINT, so that the writes an import leaves behind are not
timed with the first tools.

    .venv/bin/python scripts/bench_queries.py --records 1000000 --calls 30
    .venv/bin/python scripts/bench_queries.py --database-url postgresql://…/db --user ID

With --database-url and --user the plays already stored there are used instead, and the
user is moved to Asia/Kolkata (and back) only with --move-user; --tools times only the
named tools (comma-separated).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from cryptography.fernet import Fernet
from export_generator import generate_export
from harness import machine_check, scratch_database, stop_like_ctrl_c_on_sigterm
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from playlog.access_tokens import create_token, revoke_token
from playlog.db.engine import create_engine, create_sessionmaker
from playlog.db.models import User
from playlog.history.hours import zone_hour_start
from playlog.testing.processes import playlog_command
from playlog.users import set_timezone
from playlog_api.app import create_app
from playlog_api.settings import ApiSettings
from playlog_api.tools.registry import Tool, tools

# Arguments a tool needs besides its window, and tools that take no window at all.
EXTRA_ARGS: dict[str, dict[str, Any]] = {"history_search": {"query": "love"}}
TARGET_MS = {"history_taste_summary": (100.0, 500.0)}
DEFAULT_TARGET_MS = 50.0
# A zone whose local hours start at minute 30 of UTC's.
HALF_HOUR_TZ = "Asia/Kolkata"
# The api is served in-process, under the public URL `make run` gives it (loopback: OAuth
# on, so no warning about plain HTTP in the middle of the table).
BENCH_URL = "http://127.0.0.1:8000"


def load(url: str, records: int, seed: int) -> str:
    """Import a synthetic export for a new user; returns the user id."""
    with tempfile.TemporaryDirectory(prefix="playlog-bench-queries-") as scratch:
        path = Path(scratch) / "export.zip"
        started = time.perf_counter()
        truth = generate_export(path, records=records, seed=seed)
        print(f"generated {truth.records:,} records in {time.perf_counter() - started:.1f} s")
        env = {**os.environ, "DATABASE_URL": url}
        user = subprocess.run(  # noqa: S603 - our own command
            [*playlog_command(), "users", "add", "--name", "bench", "--timezone", "Europe/Berlin"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[-1]
        started = time.perf_counter()
        subprocess.run(  # noqa: S603 - our own command
            [*playlog_command(), "import", str(path), "--user", user, "--json"],
            env=env,
            check=True,
            capture_output=True,
        )
        print(f"imported in {time.perf_counter() - started:.1f} s")
    return user


def windows(tool: Tool[Any, Any], last_day: date) -> dict[str, dict[str, Any] | None]:
    """The arguments of the 90-day and the all-time call of ``tool`` (None: not applicable)."""
    fields = tool.input.model_fields
    extra = EXTRA_ARGS.get(tool.name, {})
    if "year" in fields:
        return {"90 days": None, "all time": {**extra, "year": last_day.year}}
    if "a_start" in fields:
        a = (last_day - timedelta(days=89), last_day)
        b = (a[0] - timedelta(days=90), a[0] - timedelta(days=1))
        return {
            "90 days": {
                "a_start": str(a[0]),
                "a_end": str(a[1]),
                "b_start": str(b[0]),
                "b_end": str(b[1]),
            },
            "all time": None,
        }
    if "start" not in fields:
        return {"latest": extra, "all time": None}
    recent = {"start": str(last_day - timedelta(days=89)), "end": str(last_day)}
    return {"90 days": {**extra, **recent}, "all time": {**extra, "days": 36500}}


class Timer:
    """Times tool calls through ``POST /mcp/call`` and prints one line per window."""

    def __init__(self, client: httpx.AsyncClient, secret: str, calls: int) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {secret}"}
        self.calls = calls
        self.misses: list[str] = []

    async def time(
        self, tool: Tool[Any, Any], label: str, args: dict[str, Any], target: float
    ) -> None:
        samples = []
        for attempt in range(self.calls + 3):
            started = time.perf_counter()
            response = await self.client.post(
                "/mcp/call", headers=self.headers, json={"tool": tool.name, "args": args}
            )
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"{tool.name} {args}: {response.text}")
            if attempt >= 3:  # the first calls warm caches and the pool
                samples.append(elapsed)
        samples.sort()
        p50 = statistics.median(samples)
        p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
        mark = "" if math.isnan(target) or p95 <= target else "  over"
        if mark:
            self.misses.append(f"{tool.name} ({label})")
        shown = "-" if math.isnan(target) else f"{target:.0f}"
        print(f"{tool.name:<28} {label:<32} {p50:8.1f} {p95:8.1f} {shown:>8}{mark}")

    async def every_window(
        self,
        tools: list[Tool[Any, Any]],
        last_day: date,
        *,
        suffix: str = "",
        tz: str | None = None,
        targeted: bool = True,
    ) -> None:
        """Times each tool over each of its windows; ``tz`` asks in that zone."""
        for tool in tools:
            for label, args in windows(tool, last_day).items():
                if args is None:
                    continue
                call = {**args, "tz": tz} if tz else args
                goal = target(tool, label) if targeted else math.nan
                await self.time(tool, label + suffix, call, goal)


def target(tool: Tool[Any, Any], label: str) -> float:
    ninety, all_time = TARGET_MS.get(tool.name, (DEFAULT_TARGET_MS, float("nan")))
    return all_time if label.startswith("all time") else ninety


async def settle(engine: AsyncEngine) -> str:
    """Writes out the pages an import left to the server's checkpointer, so that no
    timing overlaps a checkpoint the import started (a million-row import writes about a
    gigabyte of WAL, and a checkpoint spreads its writes over minutes). Needs a superuser
    or pg_checkpoint."""
    started = time.perf_counter()
    try:
        async with engine.connect() as connection:
            await connection.execute(text("CHECKPOINT"))
    except DBAPIError as exc:
        refused = type(exc.orig).__name__
        return f"no CHECKPOINT ({refused}): a running checkpoint may slow the first tools"
    return f"CHECKPOINT before timing: {time.perf_counter() - started:.1f} s"


async def move(sessionmaker: async_sessionmaker[AsyncSession], user: str, zone: str) -> float:
    """Moves the user to ``zone``; returns the seconds the hour totals' rebuild took."""
    async with sessionmaker() as session:
        row = await session.get(User, uuid.UUID(user))
        assert row is not None
        set_timezone(row, zone)
        started = time.perf_counter()
        await session.commit()
        return time.perf_counter() - started


async def half_hour_runs(
    timer: Timer,
    zoned: list[Tool[Any, Any]],
    last_day: date,
    sessionmaker: async_sessionmaker[AsyncSession],
    user: str,
    home: str,
    move_user: bool,
) -> None:
    # The user asking in a zone whose hours start at another minute: raw plays.
    await timer.every_window(
        zoned, last_day, suffix=f" tz={HALF_HOUR_TZ}", tz=HALF_HOUR_TZ, targeted=False
    )
    if not move_user:
        print(f"\nthe user stays in {home} (--move-user times them in {HALF_HOUR_TZ})")
        return
    rebuild = await move(sessionmaker, user, HALF_HOUR_TZ)
    print(f"\nmoved the user to {HALF_HOUR_TZ}: hour totals rebuilt in {rebuild:.1f} s\n")
    try:
        await timer.every_window(zoned, last_day, suffix=f", user in {HALF_HOUR_TZ}")
    finally:
        await move(sessionmaker, user, home)


async def bench(
    url: str, user: str, calls: int, only: set[str] | None = None, *, move_user: bool = True
) -> None:
    engine: AsyncEngine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session:
        plays, last, home = (
            await session.execute(
                text(
                    "SELECT count(*), max(played_at),"
                    " (SELECT timezone FROM users WHERE id = :u) FROM plays WHERE user_id = :u"
                ),
                {"u": uuid.UUID(user)},
            )
        ).one()
        issued = await create_token(session, uuid.UUID(user), "bench")
        await session.commit()
    print(f"user {user}: {plays:,} stored rows, latest {last:%Y-%m-%d}")
    print(await settle(engine))
    print(await machine_check(engine) + "\n")
    settings = ApiSettings(
        database_url=url,
        token_encryption_key=Fernet.generate_key().decode(),
        admin_token=secrets.token_urlsafe(32),
        api_public_url=BENCH_URL,
    )
    history = [
        tool
        for tool in tools()
        if tool.name.startswith("history_") and (only is None or tool.name in only)
    ]
    # Every tool that takes a zone buckets days or hours in it.
    zoned = [tool for tool in history if "tz" in tool.input.model_fields]
    print(f"{'tool':<28} {'window':<32} {'p50 ms':>8} {'p95 ms':>8} {'target':>8}")
    try:
        async with (
            LifespanManager(create_app(settings)) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url=BENCH_URL
            ) as client,
        ):
            timer = Timer(client, issued.secret, calls)
            await timer.every_window(history, last.date())
            if zone_hour_start(home) == zone_hour_start(HALF_HOUR_TZ):
                print(f"\n{home} starts hours at the minute {HALF_HOUR_TZ} does: no half-hour runs")
            else:
                await half_hour_runs(timer, zoned, last.date(), sessionmaker, user, home, move_user)
    finally:
        # Its token goes with it, however the run ends: a user holds at most 50, and the
        # benchmark may run often.
        async with sessionmaker() as session:
            await revoke_token(session, uuid.UUID(user), issued.token.id)
            await session.commit()
    print("\n" + await machine_check(engine))
    await engine.dispose()
    misses = timer.misses
    print("\nall targets met" if not misses else f"\nover target: {', '.join(misses)}")


def main() -> None:
    stop_like_ctrl_c_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--calls", type=int, default=30, help="timed calls per tool and window")
    parser.add_argument("--database-url", help="use the plays already stored there")
    parser.add_argument("--user", help="with --database-url: the user to ask about")
    parser.add_argument("--tools", help="only these tools, comma-separated")
    parser.add_argument(
        "--move-user",
        action="store_true",
        help=f"with --database-url: also move the user to {HALF_HOUR_TZ} and back (rebuilds "
        "their hour totals twice; others using the database see the move meanwhile)",
    )
    args = parser.parse_args()
    only = set(args.tools.split(",")) if args.tools else None
    if only and (unknown := only - {tool.name for tool in tools()}):
        parser.error(f"unknown tools: {', '.join(sorted(unknown))}")
    if args.database_url:
        if not args.user:
            parser.error("--database-url needs --user")
        asyncio.run(bench(args.database_url, args.user, args.calls, only, move_user=args.move_user))
        return

    async def scratch() -> None:
        async with scratch_database() as database:
            # No ANALYZE here: the import refreshes the planner's statistics itself.
            user = load(database.url, args.records, args.seed)
            await bench(database.url, user, args.calls, only)

    asyncio.run(scratch())


if __name__ == "__main__":
    main()
