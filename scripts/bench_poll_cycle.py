#!/usr/bin/env python3
"""Time one collector poll cycle over many simulated users (issue target: 1,000 in ≤ 60 s).

Starts a throwaway database, a Spotify stand-in with N listeners (no rate limit), connects
every listener through the OAuth flow, marks their initial syncs done and runs collector
processes. Then, three times, makes every user due at once and measures until each has a
finished poll: first contact (50 plays each), after 30 simulated minutes (a few new
plays each), and with nothing new. Database work per cycle comes from pg_stat counters.

    .venv/bin/python scripts/bench_poll_cycle.py --users 1000 --collectors 1
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from harness import (
    Collectors,
    Database,
    StandIn,
    collector_env,
    connect_users,
    scratch_database,
    start_stand_in,
    stop_like_ctrl_c_on_sigterm,
)
from sqlalchemy import func, select, text, update

from playlog.crypto import TokenCipher, generate_key
from playlog.db.engine import db_now
from playlog.db.models import JobRun, Play, SyncCheckpoint
from playlog.db.models.sync import SYNC_CHANNEL

_STATS = text(
    "SELECT tup_returned + tup_fetched AS rows_read, tup_inserted + tup_updated AS rows_written,"
    " xact_commit FROM pg_stat_database WHERE datname = current_database()"
)


async def database_counters(database: Database) -> dict[str, int]:
    async with database.engine.connect() as connection:
        await connection.execute(text("SELECT pg_stat_clear_snapshot()"))
        row = (await connection.execute(_STATS)).one()
    return {"rows_read": row[0], "rows_written": row[1], "commits": row[2]}


async def cycle(database: Database, users: int, label: str) -> dict[str, Any]:
    async with database.sessionmaker.begin() as session:
        started = await db_now(session)
        await session.execute(update(SyncCheckpoint).values(next_run_at=func.now()))
        await session.execute(select(func.pg_notify(SYNC_CHANNEL, "")))
    before = await database_counters(database)
    clock = time.monotonic()
    while True:
        async with database.sessionmaker() as session:
            done, last, inserted = (
                await session.execute(
                    select(
                        func.count(),
                        func.max(JobRun.finished_at),
                        func.coalesce(func.sum(JobRun.stats["inserted"].as_integer()), 0),
                    ).where(
                        JobRun.job_type == "poll",
                        JobRun.started_at >= started,
                        JobRun.finished_at.is_not(None),
                    )
                )
            ).one()
        if done >= users:
            break
        if time.monotonic() - clock > 900:
            raise SystemExit(f"{label}: only {done} of {users} polls finished in 15 minutes")
        await asyncio.sleep(0.25)
    await asyncio.sleep(1.5)  # let the statistics collector catch up
    after = await database_counters(database)
    async with database.sessionmaker() as session:
        errors = await session.scalar(
            select(func.count()).where(JobRun.started_at >= started, JobRun.status == "error")
        )
    seconds = (last - started).total_seconds()
    result = {
        "cycle": label,
        "users": users,
        "seconds": round(seconds, 2),
        "polls_per_second": round(users / seconds, 1),
        "plays_inserted": inserted,
        "errors": errors,
        "rows_read_per_poll": round((after["rows_read"] - before["rows_read"]) / users, 1),
        "rows_written_per_poll": round((after["rows_written"] - before["rows_written"]) / users, 1),
        "commits_per_poll": round((after["commits"] - before["commits"]) / users, 1),
    }
    print(
        f"{label:<26} {seconds:7.2f} s  {result['polls_per_second']:7.1f} polls/s  "
        f"inserted {inserted:6d}  errors {errors}  rows read/poll "
        f"{result['rows_read_per_poll']:8.1f}  written/poll {result['rows_written_per_poll']:6.1f}",
        flush=True,
    )
    return result


async def main(args: argparse.Namespace) -> None:
    key = generate_key()
    async with scratch_database() as database:
        print(f"stand-in with {args.users} listeners …", flush=True)
        stand_in: StandIn = start_stand_in(args.users, speed=1.0, history_hours=24)
        collectors: Collectors | None = None
        try:
            clock = time.monotonic()
            users = await connect_users(database, stand_in, TokenCipher(key))
            print(f"connected {len(users)} users in {time.monotonic() - clock:.1f} s", flush=True)
            async with database.sessionmaker.begin() as session:
                await session.execute(
                    update(SyncCheckpoint).values(
                        initial_sync_completed_at=func.now(),
                        next_run_at=func.now() + text("interval '1 day'"),
                    )
                )
            env = collector_env(
                database,
                stand_in,
                key,
                COLLECTOR_INTERVAL_SECONDS="86400",
                COLLECTOR_CONCURRENCY=str(args.concurrency),
                SPOTIFY_MAX_CONCURRENT_REQUESTS=str(args.concurrency),
                SPOTIFY_REQUESTS_PER_30S="1000000",
                DATABASE_POOL_SIZE=str(min(100, args.concurrency + 4)),
            )
            collectors = Collectors(env)
            for n in range(args.collectors):
                collectors.start(f"bench-{n + 1}")
            await asyncio.sleep(3)
            results = [await cycle(database, len(users), "first contact (50 each)")]
            stand_in.control("clock", {"seconds": 1800})
            results.append(await cycle(database, len(users), "30 simulated minutes"))
            results.append(await cycle(database, len(users), "nothing new"))
            async with database.sessionmaker() as session:
                plays = await session.scalar(select(func.count()).select_from(Play))
            print(f"plays stored: {plays}")
            print(
                f"median cycle: {statistics.median(r['seconds'] for r in results):.2f} s "
                f"for {len(users)} users, {args.collectors} collector(s), "
                f"COLLECTOR_CONCURRENCY={args.concurrency}"
            )
        finally:
            if collectors is not None:
                collectors.stop_all()
            stand_in.stop()


if __name__ == "__main__":
    stop_like_ctrl_c_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--collectors", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8)
    asyncio.run(main(parser.parse_args()))
