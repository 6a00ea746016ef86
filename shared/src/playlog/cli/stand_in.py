"""``playlog spotify-stand-in``: serve the Spotify stand-in over HTTP.

The server and the web application are imported when the command runs, not when the
command line starts.
"""

from __future__ import annotations

import argparse

from playlog.errors import ConfigurationError
from playlog.logging import configure_logging
from playlog.settings import LoggingSettings, load_settings
from playlog.spotify.stand_in.config import StandInAccount, StandInConfig


def add_parser(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "spotify-stand-in",
        help="serve a stand-in for Spotify's accounts service and Web API (tests, demo mode)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--listeners", type=int, default=1, help="simulated accounts (1-10000)")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    parser.add_argument("--history-hours", type=float, default=6.0)
    parser.add_argument(
        "--redirect-uri",
        action="append",
        help="registered redirect URI (repeatable; default http://127.0.0.1:8000/auth/callback)",
    )
    parser.add_argument("--client-id", default=StandInConfig.client_id)
    parser.add_argument("--client-secret", default=StandInConfig.client_secret)
    parser.add_argument("--rate-limit", type=int, default=0, help="requests per 30 s (0: off)")
    parser.add_argument("--deny", action="store_true", help="answer /authorize with a refusal")
    parser.add_argument(
        "--enable-control",
        action="store_true",
        help="mount the test-only /_control endpoints (fault injection)",
    )
    parser.set_defaults(handler=serve)


def build_config(args: argparse.Namespace) -> StandInConfig:
    if not 1 <= args.listeners <= 10_000:
        raise SystemExit("playlog: error: --listeners must be between 1 and 10000")
    if args.speed <= 0:
        raise SystemExit("playlog: error: --speed must be positive")
    accounts = tuple(
        StandInAccount(
            "demo-listener" if number == 0 else f"listener-{number:04d}",
            "Demo Listener" if number == 0 else f"Listener {number}",
            seed=number,
        )
        for number in range(args.listeners)
    )
    return StandInConfig(
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=tuple(args.redirect_uri or StandInConfig.redirect_uris),
        accounts=accounts,
        authorize_as=accounts[0].user_id,
        approve=not args.deny,
        speed=args.speed,
        history_hours=args.history_hours,
        rate_limit_per_30s=args.rate_limit,
        enable_control=args.enable_control,
    )


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from playlog.spotify.stand_in.app import create_stand_in_app

    config = build_config(args)
    try:
        logging_settings = load_settings(LoggingSettings)
    except ConfigurationError as exc:
        raise SystemExit(f"playlog: error: {exc}") from None
    configure_logging("spotify-stand-in", logging_settings.log_level, logging_settings.log_format)
    uvicorn.run(create_stand_in_app(config), host=args.host, port=args.port, log_config=None)
    return 0
