"""The collector as a real process: heartbeat, health probe, SIGTERM."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest_asyncio

from playlog.db.engine import create_engine
from playlog.db.migrate import upgrade
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
