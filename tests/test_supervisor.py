"""`playlog run` (what `make run` does), end to end on the embedded PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

from playlog.testing.plugin import DatabaseFactory
from playlog.testing.processes import free_port, playlog_command, wait_for_status


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(  # noqa: S603 - our own command
            [*playlog_command(), "run"],
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _postgres_running(data_dir: Path) -> bool:
    return any(
        proc.info["name"] == "postgres" and str(data_dir) in " ".join(proc.info["cmdline"] or [])
        for proc in psutil.process_iter(attrs=["name", "cmdline"])
    )


def _wait_for_line(log: Path, pattern: str) -> re.Match[str]:
    for _ in range(300):
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no line matching {pattern!r} in:\n{log.read_text()}")


@contextmanager
def _busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_run_serves_everything_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    api_port, frontend_port = free_port(), free_port()
    data_dir = tmp_path / "data"
    env = {
        "PLAYLOG_DATA_DIR": str(data_dir),
        "API_PORT": str(api_port),
        "FRONTEND_PORT": str(frontend_port),
        "SPOTIFY_STAND_IN_PORT": str(free_port()),
    }
    log = tmp_path / "run.log"
    supervisor = _start(env, log)
    try:
        ready = wait_for_status(f"http://127.0.0.1:{api_port}/readyz", timeout=90)
        assert ready.json()["status"] == "ready"
        wait_for_status(f"http://127.0.0.1:{frontend_port}/healthz", timeout=90)
        token = _wait_for_line(log, r"admin token\s+(\S+)").group(1)
        assert f"http://127.0.0.1:{api_port}" in log.read_text()
        # Demo mode: the stand-in's listener was connected through the real sign-in flow.
        demo = _wait_for_line(log, r"spotify\s+demo mode \(stand-in at (\S+)\): (.*)")
        assert demo.group(2).startswith("demo-listener connected as user ")
        login = httpx.get(f"http://127.0.0.1:{api_port}/auth/login")
        assert login.headers["location"].startswith(f"{demo.group(1)}/authorize?")

        # Another command joins the same embedded server while `run` holds it.
        added = subprocess.run(  # noqa: S603 - our own command
            [*playlog_command(), "users", "add", "--name", "While running"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert added.returncode == 0, added.stderr
        assert _postgres_running(data_dir)

        # The collector reports in through the database; the api shows it to the admin.
        headers = {"Authorization": f"Bearer {token}"}
        workers: list[dict[str, object]] = []
        for _ in range(100):
            status = httpx.get(f"http://127.0.0.1:{api_port}/admin/system", headers=headers)
            assert status.status_code == 200
            workers = [w for w in status.json()["workers"] if w["alive"]]
            if workers:
                break
            time.sleep(0.2)
        assert workers, "no live collector heartbeat"

        children = psutil.Process(supervisor.pid).children(recursive=True)
        assert len(children) >= 3
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=60)

    output = log.read_text()
    assert supervisor.returncode == 0, output
    assert "playlog: stopped" in output
    # The demo sign-in passed through the api's access log: no code or state in clear.
    assert "GET /auth/callback?code=[redacted]&state=[redacted]" in output
    assert not re.search(r"\b(code|state)=(?!\[redacted\])", output)
    leftovers = [child for child in children if child.is_running() and child.status() != "zombie"]
    assert leftovers == []
    assert not _postgres_running(data_dir)
    # The development encryption key is kept for the next start, readable only by us.
    assert (data_dir / "dev-secrets.json").stat().st_mode & 0o077 == 0


async def test_run_stops_everything_when_a_service_cannot_start(
    tmp_path: Path, database_factory: DatabaseFactory
) -> None:
    log = tmp_path / "run.log"
    supervisor = _start(
        {
            "DATABASE_URL": await database_factory(),
            "PLAYLOG_DATA_DIR": str(tmp_path / "data"),
            "API_PORT": str(free_port()),
            "FRONTEND_PORT": str(free_port()),
            "ADMIN_TOKEN": "changeme",
            "SPOTIFY_STAND_IN_PORT": str(free_port()),
        },
        log,
    )
    supervisor.wait(timeout=90)
    output = log.read_text()
    assert supervisor.returncode == 1, output
    assert "ADMIN_TOKEN is a placeholder" in output
    assert "exited with code 1; stopping everything" in output


def test_run_refuses_a_busy_port(tmp_path: Path) -> None:
    with _busy_port() as port:
        result = subprocess.run(  # noqa: S603 - our own command
            [*playlog_command(), "run"],
            env={**os.environ, "API_PORT": str(port), "PLAYLOG_DATA_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use; set API_PORT" in result.stderr


def test_run_with_an_unreachable_database_is_one_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(  # noqa: S603 - our own command
        [*playlog_command(), "run"],
        env={
            **os.environ,
            "DATABASE_URL": f"postgresql://playlog@127.0.0.1:{free_port()}/playlog",
            "API_PORT": str(free_port()),
            "FRONTEND_PORT": str(free_port()),
            "SPOTIFY_STAND_IN_PORT": str(free_port()),
            "PLAYLOG_DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "playlog: error: cannot use the database" in result.stderr
    assert "Traceback" not in result.stderr
