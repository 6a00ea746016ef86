"""Starting an HTTP service: settings (fail fast), logging, uvicorn."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from playlog.errors import ConfigurationError
from playlog.logging import configure_logging
from playlog.settings import LoggingSettings, load_settings

S = TypeVar("S", bound=LoggingSettings)


def serve(
    service: str,
    settings_cls: type[S],
    create_app: Callable[[S], FastAPI],
    address: Callable[[S], tuple[str, int]],
) -> None:
    """Load settings or exit with a clear message; then serve until SIGTERM/SIGINT."""
    try:
        settings = load_settings(settings_cls)
        app = create_app(settings)
    except ConfigurationError as exc:
        sys.exit(f"playlog-{service}: {exc}")
    configure_logging(service, settings.log_level, settings.log_format)
    host, port = address(settings)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        proxy_headers=True,
        timeout_graceful_shutdown=5,
    )
