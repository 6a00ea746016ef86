"""The api refuses to start without admin credentials (fail closed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from playlog.testing.processes import free_port, wait_for_status


def start_api(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "playlog_api"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_api_without_admin_credentials_refuses_to_start(
    database_url: str, encryption_key: str
) -> None:
    process = start_api({"DATABASE_URL": database_url, "TOKEN_ENCRYPTION_KEY": encryption_key})
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "playlog-api: invalid configuration" in stderr
    assert "ADMIN_TOKEN is required" in stderr
    assert "Traceback" not in stderr


def test_api_with_placeholder_password_refuses_to_start(
    database_url: str, encryption_key: str
) -> None:
    process = start_api(
        {
            "DATABASE_URL": database_url,
            "TOKEN_ENCRYPTION_KEY": encryption_key,
            "ADMIN_AUTH_MODE": "basic",
            "ADMIN_USERNAME": "admin",
            "ADMIN_PASSWORD": "changeme",
        }
    )
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "ADMIN_PASSWORD is a placeholder" in stderr
    assert "changeme" not in stderr


def test_api_serves_and_stops_on_sigterm(
    database_url: str, encryption_key: str, admin_token: str
) -> None:
    port = free_port()
    process = start_api(
        {
            "DATABASE_URL": database_url,
            "TOKEN_ENCRYPTION_KEY": encryption_key,
            "ADMIN_TOKEN": admin_token,
            "API_PORT": str(port),
        }
    )
    try:
        wait_for_status(f"http://127.0.0.1:{port}/readyz")
    finally:
        process.terminate()
        stdout, _ = process.communicate(timeout=30)
    # Uvicorn shuts down gracefully, then re-raises the signal it received.
    assert process.returncode == -signal.SIGTERM
    assert "Application shutdown complete" in stdout
    # JSON log lines on stdout, and the admin token in none of them.
    assert '"service": "api"' in stdout
    assert admin_token not in stdout
