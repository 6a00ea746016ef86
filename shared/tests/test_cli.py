"""The `playlog` command, run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import text

from playlog.db.engine import create_engine
from playlog.db.migrate import head_revision
from playlog.testing.plugin import DatabaseFactory
from playlog.testing.processes import free_port, playlog_command, wait_for_status


def playlog(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own command
        [*playlog_command(), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _tables(url: str) -> set[str]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            return {row[0] for row in rows}
    finally:
        await engine.dispose()


async def test_db_upgrade_downgrade_upgrade(database_factory: DatabaseFactory) -> None:
    env = {"DATABASE_URL": await database_factory()}

    result = playlog("db", "upgrade", env=env)
    assert result.returncode == 0, result.stderr
    assert {"users", "plays", "alembic_version"} <= await _tables(env["DATABASE_URL"])

    result = playlog("db", "downgrade", "base", env=env)
    assert result.returncode == 0, result.stderr
    assert await _tables(env["DATABASE_URL"]) == {"alembic_version"}

    result = playlog("db", "upgrade", env=env)
    assert result.returncode == 0, result.stderr
    current = playlog("db", "current", env=env)
    assert f"current: {head_revision()}" in current.stdout
    assert f"head:    {head_revision()}" in current.stdout


async def test_users_add_prints_the_id(database_url: str) -> None:
    spotify_id = f"listener-{uuid.uuid4().hex[:8]}"
    env = {"DATABASE_URL": database_url}
    result = playlog(
        "users", "add", "--name", "Zoë 🎧", "--timezone", "Europe/Berlin",
        "--spotify-id", spotify_id, "--json", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["display_name"] == "Zoë 🎧"
    assert created["timezone"] == "Europe/Berlin"

    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as connection:
            stored = await connection.scalar(
                text("SELECT display_name FROM users WHERE id = :id"), {"id": created["id"]}
            )
            assert stored == "Zoë 🎧"
            duplicate = playlog(
                "users", "add", "--name", "Other", "--spotify-id", spotify_id, env=env
            )
            assert duplicate.returncode == 1
            assert f"Spotify id '{spotify_id}' already exists" in duplicate.stderr
            await connection.execute(
                text("DELETE FROM users WHERE id = :id"), {"id": created["id"]}
            )
    finally:
        await engine.dispose()

    plain = playlog("users", "add", "--name", "Plain", env=env)
    assert plain.returncode == 0, plain.stderr
    assert uuid.UUID(plain.stdout.strip())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "X", "--timezone", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
        (["--name", "   "], "name must not be empty"),
        (["--name", "x" * 201], "at most 200 characters"),
    ],
)
def test_users_add_rejects_bad_input(database_url: str, args: list[str], message: str) -> None:
    result = playlog("users", "add", *args, env={"DATABASE_URL": database_url})
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_database_is_a_clear_error() -> None:
    url = f"postgresql://playlog@127.0.0.1:{free_port()}/playlog"
    result = playlog("db", "upgrade", env={"DATABASE_URL": url})
    assert result.returncode == 1
    assert result.stderr.startswith("playlog: error: cannot use the database")
    assert "Traceback" not in result.stderr


def test_output_to_a_closed_pipe_is_no_traceback() -> None:
    """`playlog … | head` where head has stopped reading: a quiet exit."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(  # noqa: S603 - our own command
            [*playlog_command(), "secrets", "generate-key"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 1
    assert result.stderr == ""


def test_non_postgres_database_url_is_refused() -> None:
    result = playlog("db", "upgrade", env={"DATABASE_URL": "sqlite:///x.db"})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "playlog: error: DATABASE_URL must be a PostgreSQL URL (postgresql://…), not 'sqlite'"
    )


def _embedded_server_running(data_dir: Path) -> bool:
    return any(
        proc.info["name"] == "postgres" and str(data_dir) in " ".join(proc.info["cmdline"] or [])
        for proc in psutil.process_iter(attrs=["name", "cmdline"])
    )


def test_embedded_server_is_started_on_demand_and_stopped(tmp_path: Path) -> None:
    env = {"PLAYLOG_DATA_DIR": str(tmp_path)}
    upgraded = playlog("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "postgres" / "PG_VERSION").exists()
    assert not _embedded_server_running(tmp_path)

    # A second command reuses the same data: the schema is still there.
    added = playlog("users", "add", "--name", "Embedded", "--json", env=env)
    assert added.returncode == 0, added.stderr
    current = playlog("db", "current", env=env)
    assert f"current: {head_revision()}" in current.stdout
    assert not _embedded_server_running(tmp_path)


def test_secrets_commands_print_usable_values() -> None:
    key = playlog("secrets", "generate-key").stdout.strip()
    token = playlog("secrets", "generate-token").stdout.strip()
    from playlog.crypto import TokenCipher

    assert TokenCipher(key).decrypt(TokenCipher(key).encrypt("x")) == "x"
    assert len(token) >= 32


def test_spotify_stand_in_serves_over_http() -> None:
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own command
        [*playlog_command(), "spotify-stand-in", "--port", str(port), "--listeners", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        response = wait_for_status(f"http://127.0.0.1:{port}/v1/me", 401)
        assert response.json() == {"error": {"status": 401, "message": "No token provided"}}
        # Fault injection is off unless asked for.
        control = httpx.post(f"http://127.0.0.1:{port}/_control/errors", json={"count": 1})
        assert control.status_code == 404
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_spotify_stand_in_rejects_bad_options() -> None:
    result = playlog("spotify-stand-in", "--listeners", "0")
    assert result.returncode == 1
    assert "--listeners must be between 1 and 10000" in result.stderr


def test_the_command_line_starts_without_what_only_some_commands_use() -> None:
    """Alembic, the ORM models and the web frameworks load with the commands that use
    them, not with every command (``playlog import`` starts without them)."""
    probe = (
        "import sys, playlog.cli.main; "
        "print(' '.join(m for m in ('alembic', 'fastapi', 'uvicorn', 'playlog.db.models') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert loaded.stdout.split() == []
