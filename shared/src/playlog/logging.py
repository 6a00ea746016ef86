"""Logging set-up shared by every service: one JSON object per line on stdout.

Context fields (``user_id``, ``job_run_id``, ``request_id`` …) set with :func:`log_context`
travel with every record logged inside the block, also into tasks started there:
``contextvars`` are copied into each new asyncio task.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

# Attributes every LogRecord has; anything else passed through ``extra=`` is context.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


# Credentials that can appear in URLs or forms (an OAuth callback's query string ends up
# in the access log; the consent page's ``request`` id lets whoever has it answer a
# pending sign-in): their values are replaced before any handler writes the line.
_CREDENTIALS = re.compile(
    r"\b(code|state|code_verifier|access_token|refresh_token|client_secret|token|request)"
    r"=([^&\s\"']+)"
)
# The same as JSON members (a token endpoint's answer quoted in an error), header values
# (Authorization: Bearer …) and personal access tokens wherever they appear.
_JSON_CREDENTIALS = re.compile(
    r'("(?:access_token|refresh_token|client_secret|id_token|token)"\s*:\s*")'
    r'(?:[^"\\]|\\.)*"'
)
_SCHEMES = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_PERSONAL_TOKENS = re.compile(r"\bplg_[A-Za-z0-9_-]+")


def redact(text: str) -> str:
    text = _CREDENTIALS.sub(r"\1=[redacted]", text)
    text = _JSON_CREDENTIALS.sub(r'\1[redacted]"', text)
    text = _SCHEMES.sub(r"\1 [redacted]", text)
    return _PERSONAL_TOKENS.sub("[redacted]", text)


_TRACEBACKS = logging.Formatter()


_context: ContextVar[Mapping[str, Any]] = ContextVar(
    "playlog_log_context", default=MappingProxyType({})
)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every record logged inside the block (nested blocks merge).

    A field set to ``None`` is left out for the block, so callers can pass optional
    values as they are. The previous context is restored on exit.
    """
    reserved = _STANDARD_ATTRS.intersection(fields)
    if reserved:
        # The same rule logging applies to ``extra=``: these would overwrite the record.
        raise ValueError(f"log context cannot set {', '.join(sorted(reserved))}")
    merged = {**_context.get(), **fields}
    token = _context.set(
        MappingProxyType({key: value for key, value in merged.items() if value is not None})
    )
    try:
        yield
    finally:
        _context.reset(token)


def current_log_context() -> Mapping[str, Any]:
    return _context.get()


class ContextFilter(logging.Filter):
    """Copies the current log context onto each record; ``extra=`` fields win."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's context and ``extra=`` fields (after :class:`ContextFilter` ran)."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD_ATTRS and not key.startswith("_")
    }


def _redacted(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact(value)
    # The depth limit also ends self-referencing structures.
    if depth >= 8:
        return value
    if isinstance(value, dict):
        return {key: _redacted(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item, depth + 1) for item in value]
    return value


# Marks an exception whose traceback one of our handlers has logged already.
LOGGED_MARK = "_playlog_logged"


class RedactingFilter(logging.Filter):
    """Redacts credentials everywhere a record carries text, once for every handler.

    The message, the context and ``extra=`` fields, and the traceback (formatted here
    into ``exc_text``, which every formatter and the database handler then reuse).
    Install it after :class:`ContextFilter` so the context is covered too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        for key, value in extra_fields(record).items():
            setattr(record, key, _redacted(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(_TRACEBACKS.formatException(record.exc_info))
        return True


class AlreadyLoggedFilter(logging.Filter):
    """Drops a server's own report of an exception our error handler logged already.

    Starlette re-raises after the 500 handler answered, and uvicorn logs the same
    traceback again without the request id.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not getattr(error, LOGGED_MARK, False)


def install_filters(handler: logging.Handler) -> None:
    """Context first, then redaction (which then covers the context too)."""
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(extra_fields(record))
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")
        )
    install_filters(handler)
    # The handler keeps LOG_LEVEL even when database logging lowers the root level to
    # LOG_DB_LEVEL (see playlog.dblog).
    handler.setLevel(level)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Uvicorn installs no handlers of its own when given log_config=None; let its
    # records reach the root handler.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, AlreadyLoggedFilter) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(AlreadyLoggedFilter())
