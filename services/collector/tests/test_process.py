"""The collector as a real process: heartbeat, health probe, SIGTERM, kill -9 mid-import."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest_asyncio
from sqlalchemy import text

from playlog.db.engine import create_engine, create_sessionmaker
from playlog.db.migrate import upgrade
from playlog.db.models import ImportJob
from playlog.exports.storage import upload_path
from playlog.testing.exports import extended_member, track_play, write_zip
from playlog.testing.factories import add_user
from playlog.testing.plugin import DatabaseFactory


def probe(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "playlog_collector", "healthcheck", "--max-age", "30"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest_asyncio.fixture
async def own_database(database_factory: DatabaseFactory) -> str:
    """A migrated database of this test's own: the probe must see committed heartbeats."""
    url = await database_factory()
    engine = create_engine(url, pool_size=1)
    await upgrade(engine)
    await engine.dispose()
    return url


def test_collector_process_lifecycle(own_database: str, encryption_key: str) -> None:
    url = own_database
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "TOKEN_ENCRYPTION_KEY": encryption_key,
        "COLLECTOR_ID": "collector-process-test",
        "COLLECTOR_HEARTBEAT_SECONDS": "0.2",
    }

    before = probe(env)
    assert before.returncode == 1
    assert "no running collector" in before.stdout

    process = subprocess.Popen(
        [sys.executable, "-m", "playlog_collector"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(100):
            healthy = probe(env)
            if healthy.returncode == 0:
                break
            time.sleep(0.2)
        assert healthy.returncode == 0, healthy.stdout
        assert healthy.stdout.startswith("healthy")
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert '"message": "collector stopped"' in output

    after = probe(env)
    assert after.returncode == 1


def test_collector_without_database_url_refuses_to_start(encryption_key: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "playlog_collector"],
        env={**os.environ, "TOKEN_ENCRYPTION_KEY": encryption_key},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "DATABASE_URL: is required" in result.stderr


def _collector(env: dict[str, str], name: str, log: Path) -> subprocess.Popen[str]:
    with log.open("w") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "playlog_collector"],
            env={**env, "COLLECTOR_ID": name},
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )


def _job(url: str, job_id: uuid.UUID) -> tuple[Any, ...]:
    """Status, records done, attempts, report, and the user's stored plays."""

    async def read() -> tuple[Any, ...]:
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.connect() as connection:
                row = await connection.execute(
                    text(
                        "SELECT status, records_done, attempts, report, "
                        "(SELECT count(*) FROM plays p WHERE p.user_id = j.user_id) "
                        "FROM import_jobs j WHERE id = :id"
                    ),
                    {"id": job_id},
                )
                return tuple(row.one())
        finally:
            await engine.dispose()

    return asyncio.run(read())


def _wait_for(
    url: str,
    job_id: uuid.UUID,
    collector: subprocess.Popen[str],
    log: Path,
    done: Callable[[tuple[Any, ...]], bool],
) -> tuple[Any, ...]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = _job(url, job_id)
        if done(job):
            return job
        if collector.poll() is not None:
            raise AssertionError(f"the collector stopped: {log.read_text()}")
        time.sleep(0.05)
    raise AssertionError(f"the job never got there: {job[:3]}")


def test_an_import_survives_a_kill_9_of_its_collector(
    own_database: str, encryption_key: str, tmp_path: Path
) -> None:
    """kill -9 of the collector in the middle of an import: its reader process goes too,
    the next collector takes the job over once the lease lapses, and the job ends with
    every play stored once, the members of the killed run counted as its own."""
    url = own_database
    members, per_member = 40, 5000
    start = datetime(2020, 1, 1, tzinfo=UTC)
    records = {
        extended_member(m): [
            track_play(f"{start + timedelta(seconds=30 * (m * per_member + i)):%Y-%m-%dT%H:%M:%SZ}")
            for i in range(per_member)
        ]
        for m in range(members)
    }
    uploads = tmp_path / "uploads"
    job_id = asyncio.run(_queued_job(url, uploads, records))
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "TOKEN_ENCRYPTION_KEY": encryption_key,
        "UPLOAD_DIR": str(uploads),
        "COLLECTOR_HEARTBEAT_SECONDS": "0.2",
        "COLLECTOR_SCAN_SECONDS": "0.2",
        "COLLECTOR_LEASE_SECONDS": "11",
        "SPOTIFY_MAX_RETRY_AFTER_SECONDS": "0",
    }

    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = _collector(env, "collector-killed", first_log)
    try:
        # Killed once its first member is stored: the progress figures come a second
        # apart, and by the first of them a fast machine has parsed the whole file.
        running = _wait_for(
            url, job_id, first, first_log, lambda job: job[0] == "running" and job[4] > 0
        )
        reader = [
            child
            for child in psutil.Process(first.pid).children(recursive=True)
            if "playlog.exports.reader" in " ".join(child.cmdline())
        ]
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.kill()
        first.wait(timeout=30)
    assert running[4] < members * per_member, "the import ended before the kill"
    assert reader, "no reader process was running at the kill"
    # The reader stops at its next write to the dead importer.
    _, alive = psutil.wait_procs(reader, timeout=30)
    assert alive == []
    assert _job(url, job_id)[0] == "running"

    second = _collector(env, "collector-heir", second_log)
    try:
        status, records_done, attempts, report, stored = _wait_for(
            url, job_id, second, second_log, lambda job: job[0] not in ("pending", "running")
        )
    finally:
        second.terminate()
        second.wait(timeout=30)
    assert (status, attempts, stored) == ("success", 2, members * per_member)
    assert (report["plays_inserted"], report["duplicates"]) == (members * per_member, 0)
    assert [f["status"] for f in report["files"]] == ["imported"] * members
    assert records_done == members * per_member
    assert not list(uploads.rglob("*.zip*"))


async def _queued_job(url: str, uploads: Path, records: dict[str, Any]) -> uuid.UUID:
    """A user and a pending job with its upload in place, as the upload endpoint leaves them."""
    engine = create_engine(url, pool_size=1)
    try:
        async with create_sessionmaker(engine).begin() as session:
            user = await add_user(session, "importer")
            job_id = uuid.uuid4()
            path = upload_path(uploads, user.id, job_id)
            path.parent.mkdir(parents=True)
            write_zip(path, records)
            session.add(ImportJob(id=job_id, user_id=user.id, storage_path=str(path)))
        return job_id
    finally:
        await engine.dispose()
