"""The development supervisor behind ``make run`` / ``playlog run``.

Migrates the database, then runs api, frontend and collector as child processes until
Ctrl-C or SIGTERM. Each child gets its own process group, so stopping reaches anything it
started; children also receive SIGTERM from the kernel if the supervisor itself dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx
from sqlalchemy.engine import make_url

from playlog.cli.database import database_url, run_on_database
from playlog.crypto import generate_key
from playlog.db import migrate
from playlog.db.embedded import data_dir_from_env
from playlog.errors import ConfigurationError
from playlog.spotify.stand_in import StandInConfig

# SIGTERM → SIGKILL grace; with the database stop this keeps a full stop under 10 s.
STOP_GRACE_SECONDS = 7.0
READY_TIMEOUT_SECONDS = 60.0
_PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    name: str
    # Arguments after `python -m`.
    args: list[str]
    process: subprocess.Popen[bytes] | None = None


def _die_with_parent() -> None:
    """Runs in the child before exec: ask the kernel for SIGTERM when the parent dies."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    def __init__(self, children: list[Child], env: dict[str, str]) -> None:
        self.children = children
        self.env = env
        self.stop_requested = threading.Event()

    def start(self) -> None:
        for child in self.children:
            child.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", *child.args],
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def exited(self) -> Child | None:
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                return child
        return None

    def wait(self) -> int:
        """Block until a stop is requested (exit 0) or a child dies (exit 1)."""
        while not self.stop_requested.wait(0.2):
            child = self.exited()
            if child is not None:
                assert child.process is not None
                print(
                    f"playlog: {child.name} exited with code {child.process.returncode}; "
                    "stopping everything",
                    file=sys.stderr,
                )
                return 1
        return 0

    def stop(self) -> None:
        running = [c.process for c in self.children if c.process and c.process.poll() is None]
        for process in running:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.0, deadline - time.monotonic()))
        for process in running:
            # Whatever is left in the group (the child or anything it spawned) is killed.
            _signal_group(process, signal.SIGKILL)
            process.wait()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    try:
        port = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a port number, not '{raw}'") from None
    if not 1 <= port <= 65535:
        raise ConfigurationError(f"{name} must be between 1 and 65535")
    return port


def _ensure_free(host: str, port: int, variable: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise ConfigurationError(
                f"port {port} on {host} is already in use; set {variable} to another port"
            ) from None


def _development_secrets(data_dir: Path) -> dict[str, str]:
    """Secrets that must survive restarts, generated once and kept under the data dir.

    Stored tokens cannot be read without the same encryption key.
    """
    path = data_dir / "dev-secrets.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    wanted = {"token_encryption_key": generate_key, "auth_state_secret": _token}
    missing = {name: make() for name, make in wanted.items() if name not in stored}
    if missing:
        stored |= missing
        data_dir.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(stored, handle)
        temporary.replace(path)
    return stored


def _token() -> str:
    return secrets.token_urlsafe(32)


def _wait_until_ready(supervisor: Supervisor, checks: list[tuple[str, int]]) -> bool:
    """Poll each (url, expected status) in turn until all answer or time runs out."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    pending = list(checks)
    with httpx.Client(timeout=2.0) as client:
        while pending and time.monotonic() < deadline:
            if supervisor.stop_requested.is_set() or supervisor.exited():
                return False
            url, expected = pending[0]
            try:
                if client.get(url).status_code == expected:
                    pending.pop(0)
                    continue
            except httpx.TransportError:
                pass
            time.sleep(0.3)
    return not pending


def _connect_demo_listener(api: str) -> str:
    """Sign the stand-in's demo listener in through the api's real OAuth flow."""
    with httpx.Client(timeout=10.0) as browser:
        login = browser.get(f"{api}/auth/login")
        consent = browser.get(login.headers["location"])
        done = browser.get(consent.headers["location"], headers={"Accept": "application/json"})
        done.raise_for_status()
        connected: dict[str, str] = done.json()
    return f"{connected['spotify_user_id']} connected as user {connected['user_id']}"


def _describe_database(url: str, embedded: bool) -> str:
    if embedded:
        return f"embedded PostgreSQL in {data_dir_from_env() / 'postgres'}"
    return make_url(url).render_as_string(hide_password=True)


def _credentials(env: dict[str, str], generated: bool) -> str:
    if env["ADMIN_AUTH_MODE"] != "token":
        return f"admin user    {env.get('ADMIN_USERNAME')} (HTTP Basic)"
    hint = "  (generated; set ADMIN_TOKEN to choose one)" if generated else ""
    return f"admin token   {env['ADMIN_TOKEN']}{hint}"


def run_development() -> int:
    env = dict(os.environ)
    api_host = env.setdefault("API_HOST", "127.0.0.1")
    frontend_host = env.setdefault("FRONTEND_HOST", "127.0.0.1")
    api_port = _port("API_PORT", 8000)
    frontend_port = _port("FRONTEND_PORT", 8001)
    _ensure_free(api_host, api_port, "API_PORT")
    _ensure_free(frontend_host, frontend_port, "FRONTEND_PORT")
    env.update(API_PORT=str(api_port), FRONTEND_PORT=str(frontend_port))
    env.setdefault("API_BASE_URL", f"http://127.0.0.1:{api_port}")
    env.setdefault("API_PUBLIC_URL", f"http://127.0.0.1:{api_port}")
    env.setdefault("LOG_FORMAT", "text")
    kept = _development_secrets(data_dir_from_env())
    if not env.get("TOKEN_ENCRYPTION_KEY"):
        env["TOKEN_ENCRYPTION_KEY"] = kept["token_encryption_key"]
    if not env.get("AUTH_STATE_SECRET"):
        env["AUTH_STATE_SECRET"] = kept["auth_state_secret"]
    generated_token = env.setdefault("ADMIN_AUTH_MODE", "token") == "token" and not env.get(
        "ADMIN_TOKEN"
    )
    if generated_token:
        env["ADMIN_TOKEN"] = _token()
    embedded = not env.get("DATABASE_URL", "").strip()
    children = [
        Child("api", ["playlog_api"]),
        Child("frontend", ["playlog_frontend"]),
        Child("collector", ["playlog_collector"]),
    ]
    checks = [
        (f"http://127.0.0.1:{api_port}/readyz", 200),
        (f"http://127.0.0.1:{frontend_port}/healthz", 200),
    ]
    stand_in: str | None = None
    if not env.get("SPOTIFY_CLIENT_ID", "").strip():
        # Demo mode: no Spotify app configured, so a local stand-in plays Spotify.
        stand_in_port = _port("SPOTIFY_STAND_IN_PORT", 8090)
        _ensure_free("127.0.0.1", stand_in_port, "SPOTIFY_STAND_IN_PORT")
        stand_in = f"http://127.0.0.1:{stand_in_port}"
        redirect_uri = f"http://127.0.0.1:{api_port}/auth/callback"
        env.update(
            SPOTIFY_CLIENT_ID=StandInConfig.client_id,
            SPOTIFY_REDIRECT_URI=redirect_uri,
            SPOTIFY_API_BASE_URL=f"{stand_in}/v1",
            SPOTIFY_ACCOUNTS_BASE_URL=stand_in,
        )
        args = ["playlog", "spotify-stand-in", "--port", str(stand_in_port)]
        children.insert(0, Child("spotify-stand-in", [*args, "--redirect-uri", redirect_uri]))
        # Any answer means it is up: /v1/me without a token is a 401.
        checks.insert(0, (f"{stand_in}/v1/me", 401))

    supervisor = Supervisor(children, env)

    def request_stop(signum: int, frame: FrameType | None) -> None:
        supervisor.stop_requested.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, request_stop)

    with database_url() as url:
        print("playlog: migrating the database …", flush=True)
        run_on_database(url, migrate.upgrade)
        env["DATABASE_URL"] = url
        supervisor.start()
        try:
            api = f"http://127.0.0.1:{api_port}"
            dashboard = f"http://127.0.0.1:{frontend_port}"
            ready = _wait_until_ready(supervisor, checks)
            spotify = f"Spotify app {env['SPOTIFY_CLIENT_ID']}"
            if ready and stand_in is not None:
                try:
                    spotify = f"demo mode (stand-in at {stand_in}): {_connect_demo_listener(api)}"
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    spotify = f"demo mode (stand-in at {stand_in}): connecting failed ({exc})"
            if ready:
                print(
                    "\nPlaylog is running\n"
                    f"  api           {api}   (OpenAPI docs: {api}/docs)\n"
                    f"  dashboard     {dashboard}\n"
                    f"  {_credentials(env, generated_token)}\n"
                    f"  database      {_describe_database(url, embedded)}\n"
                    f"  spotify       {spotify}\n"
                    "Press Ctrl-C to stop.\n",
                    flush=True,
                )
            elif not supervisor.stop_requested.is_set() and not supervisor.exited():
                print(
                    f"playlog: not ready after {READY_TIMEOUT_SECONDS:.0f}s "
                    f"({', '.join(url for url, _ in checks)}); still running, see the logs above",
                    file=sys.stderr,
                    flush=True,
                )
            code = supervisor.wait()
        finally:
            print("playlog: stopping …", flush=True)
            supervisor.stop()
    print("playlog: stopped", flush=True)
    return code
