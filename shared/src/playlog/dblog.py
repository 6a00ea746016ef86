"""Storing log records in the ``logs`` table without ever slowing the service down.

``DatabaseLogHandler.emit`` only turns a record into a plain row and puts it on a bounded
queue; a ``DatabaseLogWriter`` task in the service's event loop inserts the queue in
batches. Nothing is lost silently: records dropped because the queue was full or the
database failed are counted, and reported on stderr and as a WARNING row once the
database answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from playlog.db.models import LogRecord as LogRow
from playlog.logging import extra_fields, install_filters
from playlog.settings import DatabaseLogSettings
from playlog.text import storable

Row = dict[str, Any]

BATCH_SIZE = 500
FLUSH_INTERVAL = 1.0
SHUTDOWN_FLUSH_SECONDS = 2.0
# A hung database must not stall the writer forever; the queue meanwhile fills and drops.
WRITE_TIMEOUT = 10.0
# Longest stored message, exception or context string, in characters.
MAX_TEXT = 8 * 1024

# Access lines, SQL echo and httpx's line per request would flood the table (stdout has
# them).
_SKIPPED_LOGGERS = ("uvicorn.access", "sqlalchemy.engine", "httpx", "httpcore")
# True inside the writer task and the tasks it starts: what the driver or the pool log
# while a batch is written is not queued again, so a failing database cannot keep the
# queue busy with its own errors.
_inside_writer: ContextVar[bool] = ContextVar("playlog_inside_log_writer", default=False)
_exception_formatter = logging.Formatter()
_SCALARS = (bool, int, float, type(None))


def _skipped(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in _SKIPPED_LOGGERS)


def _clean_text(text: str, *, keep_end: bool = False) -> str:
    # Already redacted by the handler's RedactingFilter.
    if len(text) > MAX_TEXT:
        cut = len(text) - MAX_TEXT
        if keep_end:
            text = f"[{cut} characters cut] …{text[-MAX_TEXT:]}"
        else:
            text = f"{text[:MAX_TEXT]}… [{cut} characters cut]"
    # A NUL or a lone surrogate would fail the whole batch.
    return storable(text)


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, dict):
        return {_clean_text(key): _clean_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean_json(item) for item in value]
    return value


class DatabaseLogHandler(logging.Handler):
    """Queues records for the ``logs`` table; ``emit`` never blocks or touches the database.

    ``dropped_queue_full`` and ``dropped_write_failed`` count records that never reached
    the table (``dropped_total`` is their sum); ``written_total`` counts stored records.
    """

    def __init__(self, service: str, *, level: int | str, queue_size: int) -> None:
        super().__init__(level)
        self.service = service
        # Context and redaction here too: the stdout handler may not exist (tests).
        install_filters(self)
        self._queue: queue.Queue[Row] = queue.Queue(maxsize=queue_size)
        # With this many records waiting the writer runs before its next tick.
        self._wake_at = min(BATCH_SIZE, queue_size // 2)
        self._wake_sent = False
        # Set by the writer; callable from any thread.
        self.wake: Callable[[], None] | None = None
        self.dropped_queue_full = 0
        self.dropped_write_failed = 0
        self.written_total = 0

    @property
    def dropped_total(self) -> int:
        return self.dropped_queue_full + self.dropped_write_failed

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def emit(self, record: logging.LogRecord) -> None:
        if _inside_writer.get() or _skipped(record.name):
            return
        try:
            row = self.to_row(record)
        except Exception:
            self.handleError(record)
            return
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self.dropped_queue_full += 1
            return
        if self.wake is not None and not self._wake_sent and self.pending >= self._wake_at:
            self._wake_sent = True
            self.wake()

    def to_row(self, record: logging.LogRecord) -> Row:
        context: dict[str, Any] = {}
        for key, value in extra_fields(record).items():
            if isinstance(value, str):
                context[key] = _clean_text(value)
            elif isinstance(value, _SCALARS) and value == value:  # NaN is no JSON
                context[key] = value
            else:
                # Containers and objects: what JSON can hold, as the database will store it.
                try:
                    plain = json.loads(json.dumps(value, default=str, allow_nan=False))
                except (TypeError, ValueError):
                    continue  # circular or not representable: stdout still shows it
                context[key] = _clean_json(plain)
        if record.exc_info:
            exception = record.exc_text or _exception_formatter.formatException(record.exc_info)
            # A traceback ends with the innermost frame and the error itself.
            context["exception"] = _clean_text(exception, keep_end=True)
        return {
            "service": self.service,
            "level": record.levelname,
            "timestamp": datetime.fromtimestamp(record.created, UTC),
            "logger": record.name,
            "message": _clean_text(record.getMessage()),
            "context": context,
        }

    def take(self, limit: int) -> list[Row]:
        rows: list[Row] = []
        with contextlib.suppress(queue.Empty):
            while len(rows) < limit:
                rows.append(self._queue.get_nowait())
        self._wake_sent = False
        return rows


class DatabaseLogWriter:
    """Inserts queued rows about every ``interval`` seconds, one INSERT per batch."""

    def __init__(
        self,
        handler: DatabaseLogHandler,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        interval: float = FLUSH_INTERVAL,
    ) -> None:
        self.handler = handler
        self.sessionmaker = sessionmaker
        self.interval = interval
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        # Set before the task first runs: records emitted right after start can wake it.
        handler.wake = self._wake_soon
        self._stopping = False
        self._reported_queue_full = 0
        self._reported_write_failed = 0
        # One stderr line per outage, not one per failed batch.
        self._failing = False

    async def run(self) -> None:
        _inside_writer.set(True)
        while True:
            if not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            # Read before writing: once stopped, nothing new is queued (the handler is
            # already removed), so this pass is the final flush.
            final = self._stopping
            try:
                await self.write_pending()
            except Exception as exc:
                # A bug here must not end database logging for the life of the process.
                self._say(f"log writer error ({type(exc).__name__})")
            if final:
                return

    def stop(self) -> None:
        """Ask ``run`` to write what is queued and return."""
        self._stopping = True
        self._wake.set()

    def _wake_soon(self) -> None:
        # Called from emit, possibly on another thread; a closed loop means shutdown,
        # which flushes anyway.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._wake.set)

    async def write_pending(self) -> None:
        while rows := self.handler.take(BATCH_SIZE):
            try:
                stored = await self._insert(rows)
            except asyncio.CancelledError:
                # Shutdown cut the write short: these rows are lost, and said so.
                self.handler.dropped_write_failed += len(rows)
                raise
            if stored:
                self.handler.written_total += len(rows)
            else:
                self.handler.dropped_write_failed += len(rows)
        await self._report_drops()

    async def _insert(self, rows: list[Row]) -> bool:
        try:
            async with asyncio.timeout(WRITE_TIMEOUT), self.sessionmaker.begin() as session:
                # A list of rows, not a multi-row VALUES: compiled once and cached.
                await session.execute(insert(LogRow), rows)
        except Exception as exc:
            if not self._failing:
                self._failing = True
                # The type only: driver messages can quote parameters or addresses.
                self._say(
                    f"could not store {len(rows)} log records ({type(exc).__name__}); "
                    "records are counted as dropped until the database answers"
                )
            return False
        self._failing = False
        return True

    async def _report_drops(self) -> None:
        queue_full = self.handler.dropped_queue_full - self._reported_queue_full
        write_failed = self.handler.dropped_write_failed - self._reported_write_failed
        dropped = queue_full + write_failed
        if not dropped:
            return
        reasons = [
            reason
            for count, reason in (
                (queue_full, "queue full"),
                (write_failed, "database write failed"),
            )
            if count
        ]
        message = f"{dropped} log records dropped: {', '.join(reasons)}"
        total = self._reported + dropped
        record = logging.makeLogRecord(
            {
                "name": __name__,
                "levelno": logging.WARNING,
                "levelname": "WARNING",
                "msg": message,
                "dropped": dropped,
                "dropped_total": total,
                "queue_full": queue_full,
                "write_failed": write_failed,
            }
        )
        # Not reported yet when this fails: the next batch tries again.
        if await self._insert([self.handler.to_row(record)]):
            self._reported_queue_full += queue_full
            self._reported_write_failed += write_failed
            self._say(message)

    @property
    def _reported(self) -> int:
        return self._reported_queue_full + self._reported_write_failed

    def report_unstored(self) -> None:
        """At shutdown: count what is still queued and say what never reached the table."""
        self.handler.wake = None
        self.handler.dropped_write_failed += len(self.handler.take(self.handler.pending + 1))
        unreported = self.handler.dropped_total - self._reported
        if unreported:
            self._say(f"shutting down with {unreported} log records not stored")

    def _say(self, text: str) -> None:
        # stderr, not logging: logging is what is failing.
        print(f"playlog-{self.handler.service}: {text}", file=sys.stderr, flush=True)


@asynccontextmanager
async def database_logging(
    service: str,
    settings: DatabaseLogSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    flush_interval: float = FLUSH_INTERVAL,
) -> AsyncIterator[DatabaseLogHandler]:
    """Store records at or above ``LOG_DB_LEVEL`` in the ``logs`` table while the block runs.

    Installs a :class:`DatabaseLogHandler` on the root logger and runs its writer as a
    task of the current event loop. On exit the handler is removed and what is queued is
    written, for at most ``SHUTDOWN_FLUSH_SECONDS``.
    """
    handler = DatabaseLogHandler(
        service, level=settings.log_db_level, queue_size=settings.log_db_queue_size
    )
    writer = DatabaseLogWriter(handler, sessionmaker, interval=flush_interval)
    root = logging.getLogger()
    root_level = root.level
    # Records below the root logger's level reach no handler at all; stdout keeps its
    # own LOG_LEVEL on its handler.
    if root.getEffectiveLevel() > handler.level:
        root.setLevel(handler.level)
    root.addHandler(handler)
    task = asyncio.create_task(writer.run(), name=f"{service} log writer")
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(root_level)
        writer.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, SHUTDOWN_FLUSH_SECONDS)
        writer.report_unstored()
