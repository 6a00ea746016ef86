"""Helpers for tests that run Playlog commands as real processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def playlog_command() -> list[str]:
    """The installed ``playlog`` console script of this interpreter's environment."""
    return [os.path.join(os.path.dirname(sys.executable), "playlog")]


def wait_for_status(url: str, status: int = 200, *, timeout: float = 60.0) -> httpx.Response:
    """Poll ``url`` until it answers ``status``; raise with the last answer on time-out."""
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            try:
                response = client.get(url)
                if response.status_code == status:
                    return response
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.TransportError as exc:
                last = type(exc).__name__
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer {status} (last: {last})")


def run_playlog(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``playlog ARGS`` on ``database_url`` with a bare environment; never raises."""
    return subprocess.run(  # noqa: S603 - our own command
        [*playlog_command(), *args],
        env={"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
