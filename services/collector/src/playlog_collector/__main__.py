"""``python -m playlog_collector`` runs the worker; ``… healthcheck`` probes it."""

from __future__ import annotations

import argparse
import asyncio
import sys

from playlog.db.heartbeat import STALE_AFTER
from playlog.errors import ConfigurationError
from playlog.logging import configure_logging
from playlog.settings import load_settings
from playlog_collector.health import check_health
from playlog_collector.settings import CollectorSettings
from playlog_collector.worker import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m playlog_collector")
    commands = parser.add_subparsers(dest="command")
    probe = commands.add_parser(
        "healthcheck", help="exit 0 when a collector on this host has beaten recently"
    )
    probe.add_argument(
        "--max-age",
        type=float,
        default=STALE_AFTER.total_seconds(),
        help=f"seconds (default {STALE_AFTER.total_seconds():.0f}, as the admin API)",
    )
    args = parser.parse_args(argv)

    try:
        settings = load_settings(CollectorSettings)
    except ConfigurationError as exc:
        sys.exit(f"playlog-collector: {exc}")
    if args.command == "healthcheck":
        healthy, message = asyncio.run(check_health(settings, args.max_age))
        print(message)
        sys.exit(0 if healthy else 1)
    configure_logging("collector", settings.log_level, settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
