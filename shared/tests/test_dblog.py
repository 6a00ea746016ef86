"""Log records reach the ``logs`` table with their context, without blocking, never silently lost.

The writer commits, so these tests use sessions on the engine (not the rolled-back test
transaction), give every test its own service name and delete its rows afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import delete, event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from playlog.db.engine import create_engine, create_sessionmaker
from playlog.db.models import LogRecord as LogRow
from playlog.dblog import MAX_TEXT, DatabaseLogHandler, database_logging
from playlog.logging import current_log_context, log_context
from playlog.settings import DatabaseLogSettings
from playlog.testing.processes import free_port

log = logging.getLogger("playlog.tests.dblog")
FAST = 0.05  # writer tick for tests that wait for it
NEVER = 3600.0  # writer tick for tests that must see only early wake-ups or the final flush


@pytest.fixture
def sessionmaker(db_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(db_engine)


@pytest_asyncio.fixture
async def service(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[str]:
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    async with sessionmaker.begin() as session:
        await session.execute(delete(LogRow).where(LogRow.service == name))


async def stored(sessionmaker: async_sessionmaker[AsyncSession], service: str) -> list[LogRow]:
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(LogRow).where(LogRow.service == service).order_by(LogRow.id)
        )
        return list(rows)


def written_at_least(handler: DatabaseLogHandler, count: int) -> bool:
    return handler.written_total >= count


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_records_are_stored_with_level_logger_and_context(
    sessionmaker: async_sessionmaker[AsyncSession], service: str
) -> None:
    user_id = uuid.uuid4()
    async with database_logging(
        service, DatabaseLogSettings(), sessionmaker, flush_interval=FAST
    ) as handler:
        with log_context(user_id=user_id, job_run_id=42):
            with log_context(request_id="req-1", job_run_id=43):
                log.info("synced %d plays", 3, extra={"plays": 3})
            log.warning("after the request")
        assert current_log_context() == {}
        log.error("outside any context")
        await eventually(lambda: handler.written_total == 3)

    rows = await stored(sessionmaker, service)
    assert [(row.level, row.logger, row.message) for row in rows] == [
        ("INFO", log.name, "synced 3 plays"),
        ("WARNING", log.name, "after the request"),
        ("ERROR", log.name, "outside any context"),
    ]
    assert rows[0].context == {
        "user_id": str(user_id),
        "job_run_id": 43,
        "request_id": "req-1",
        "plays": 3,
    }
    assert rows[1].context == {"user_id": str(user_id), "job_run_id": 42}
    assert rows[2].context == {}
    assert abs(rows[0].timestamp - datetime.now(UTC)) < timedelta(minutes=1)
    assert handler.dropped_total == 0


async def test_context_follows_tasks_and_threads_and_exceptions_are_kept(
    sessionmaker: async_sessionmaker[AsyncSession], service: str
) -> None:
    async def in_a_task() -> None:
        log.info("from a task")

    async with database_logging(
        service, DatabaseLogSettings(), sessionmaker, flush_interval=FAST
    ) as handler:
        with log_context(job_run_id="run-7"):
            await asyncio.create_task(in_a_task())
            await asyncio.to_thread(log.info, "from a thread")
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                log.exception("job failed")
        await eventually(lambda: handler.written_total == 3)

    rows = await stored(sessionmaker, service)
    assert [row.message for row in rows] == ["from a task", "from a thread", "job failed"]
    assert all(row.context["job_run_id"] == "run-7" for row in rows)
    assert "RuntimeError: boom" in rows[2].context["exception"]
    assert "Traceback" in rows[2].context["exception"]


async def test_level_threshold(
    sessionmaker: async_sessionmaker[AsyncSession], service: str
) -> None:
    root = logging.getLogger()
    level_before = root.level
    # Everything reaches the handlers, so the handler's own threshold is what is tested.
    root.setLevel(logging.DEBUG)
    try:
        settings = DatabaseLogSettings(log_db_level="WARNING")
        async with database_logging(service, settings, sessionmaker, flush_interval=FAST):
            log.debug("debug")
            log.info("info")
            log.warning("warning")
            log.error("error")
        assert root.level == logging.DEBUG
    finally:
        root.setLevel(level_before)

    assert [row.level for row in await stored(sessionmaker, service)] == ["WARNING", "ERROR"]


async def test_db_level_below_the_stdout_level_is_honoured(
    sessionmaker: async_sessionmaker[AsyncSession], service: str
) -> None:
    root = logging.getLogger()
    level_before = root.level
    root.setLevel(logging.WARNING)  # as configure_logging leaves it with LOG_LEVEL=WARNING
    try:
        async with database_logging(service, DatabaseLogSettings(), sessionmaker):
            log.info("stored although stdout shows only warnings")
        assert root.level == logging.WARNING
    finally:
        root.setLevel(level_before)

    assert [row.level for row in await stored(sessionmaker, service)] == ["INFO"]


async def test_credentials_are_redacted(
    sessionmaker: async_sessionmaker[AsyncSession], service: str
) -> None:
    async with database_logging(service, DatabaseLogSettings(), sessionmaker, flush_interval=FAST):
        log.info(
            "GET /auth/callback?code=AQB-secret-code&state=st4te token=tok-secret",
            extra={"url": "https://example.test/cb?code=AQB-secret-code", "nested": ["token=x1"]},
        )

    (row,) = await stored(sessionmaker, service)
    assert row.message == "GET /auth/callback?code=[redacted]&state=[redacted] token=[redacted]"
    assert row.context == {
        "url": "https://example.test/cb?code=[redacted]",
        "nested": ["token=[redacted]"],
    }


async def test_oversized_and_odd_values_are_stored_safely(
    sessionmaker: async_sessionmaker[AsyncSession], service: str
) -> None:
    circular: dict[str, object] = {}
    circular["self"] = circular
    async with database_logging(service, DatabaseLogSettings(), sessionmaker, flush_interval=FAST):
        log.info(
            "x" * (MAX_TEXT * 3),
            extra={"when": datetime(2026, 1, 2, tzinfo=UTC), "circular": circular},
        )
        log.info("nul \x00 and a lone surrogate \udcff")
        try:
            raise ValueError("deep " * MAX_TEXT + "end")
        except ValueError:
            log.exception("failed")

    long, odd, failed = await stored(sessionmaker, service)
    assert long.message.startswith("x" * MAX_TEXT)
    assert long.message.endswith(f"[{MAX_TEXT * 2} characters cut]")
    # Not JSON-serialisable fields are left out, everything else becomes plain JSON.
    assert long.context == {"when": "2026-01-02 00:00:00+00:00"}
    assert odd.message == "nul \ufffd and a lone surrogate ?"
    # Of a long traceback the end is kept: it names the error.
    exception = failed.context["exception"]
    assert re.match(r"\[\d+ characters cut\] …", exception)
    assert exception.endswith("deep deep end")
    assert len(exception) < MAX_TEXT + 50


async def test_emit_does_not_wait_for_an_unreachable_database(
    db_engine: AsyncEngine, service: str, capsys: pytest.CaptureFixture[str]
) -> None:
    password = "pw-never-printed"
    unreachable = create_engine(
        f"postgresql://playlog:{password}@127.0.0.1:{free_port()}/playlog", pool_size=1
    )
    sessionmaker = create_sessionmaker(unreachable)
    try:
        async with database_logging(
            service, DatabaseLogSettings(), sessionmaker, flush_interval=FAST
        ) as handler:
            for number in range(20):
                log.warning("while the database is down %d", number)
            # emit is synchronous and only queued: nothing was attempted yet.
            assert handler.pending == 20
            await eventually(lambda: handler.dropped_write_failed == 20)
            assert handler.written_total == 0

            # The service carries on; once the database answers, the loss is reported.
            sessionmaker.configure(bind=db_engine)
            log.warning("database is back")
            await eventually(lambda: handler.written_total == 1)
    finally:
        await unreachable.dispose()

    rows = await stored(sessionmaker, service)
    assert [(row.level, row.message) for row in rows] == [
        ("WARNING", "database is back"),
        ("WARNING", "20 log records dropped: database write failed"),
    ]
    assert rows[1].context == {
        "dropped": 20,
        "dropped_total": 20,
        "queue_full": 0,
        "write_failed": 20,
    }
    assert handler.dropped_total == 20
    err = capsys.readouterr().err
    # One line per outage, not one per failed batch.
    assert err.count(f"playlog-{service}: could not store") == 1
    assert f"playlog-{service}: 20 log records dropped: database write failed" in err
    assert password not in err


async def test_queue_overflow_is_counted_and_reported(
    sessionmaker: async_sessionmaker[AsyncSession],
    service: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = DatabaseLogSettings(log_db_queue_size=100)
    async with database_logging(service, settings, sessionmaker, flush_interval=NEVER) as handler:
        # No await in between: the writer cannot drain while these are emitted.
        for number in range(150):
            log.info("record %d", number)
        assert handler.pending == 100
        assert handler.dropped_queue_full == 50
        # A full queue wakes the writer long before its tick.
        await eventually(lambda: handler.written_total == 100)

    rows = await stored(sessionmaker, service)
    assert [row.message for row in rows[:100]] == [f"record {n}" for n in range(100)]
    report = rows[100]
    assert (report.level, report.logger) == ("WARNING", "playlog.dblog")
    assert report.message == "50 log records dropped: queue full"
    assert report.context == {
        "dropped": 50,
        "dropped_total": 50,
        "queue_full": 50,
        "write_failed": 0,
    }
    assert handler.dropped_total == 50
    assert f"playlog-{service}: 50 log records dropped: queue full" in capsys.readouterr().err


async def test_shutdown_flushes_what_is_queued(
    sessionmaker: async_sessionmaker[AsyncSession], service: str
) -> None:
    async with database_logging(
        service, DatabaseLogSettings(), sessionmaker, flush_interval=NEVER
    ) as handler:
        for number in range(3):
            log.info("pending %d", number)
        await asyncio.sleep(0.1)
        assert handler.pending == 3
        assert await stored(sessionmaker, service) == []

    assert handler not in logging.getLogger().handlers
    assert [row.message for row in await stored(sessionmaker, service)] == [
        "pending 0",
        "pending 1",
        "pending 2",
    ]


async def test_sqlalchemy_and_httpx_logging_does_not_feed_the_table(
    sessionmaker: async_sessionmaker[AsyncSession], service: str
) -> None:
    engine_logger = logging.getLogger("sqlalchemy.engine")
    level_before = engine_logger.level
    # Every statement, the writer's INSERTs included, now logs at INFO.
    engine_logger.setLevel(logging.INFO)
    try:
        async with database_logging(
            service, DatabaseLogSettings(), sessionmaker, flush_interval=FAST
        ) as handler:
            log.info("only this one")
            await stored(sessionmaker, service)  # statements logged outside the writer too
            # httpx says "HTTP Request: …" at INFO for every call (to Spotify, say).
            ok = httpx.MockTransport(lambda request: httpx.Response(200))
            async with httpx.AsyncClient(transport=ok) as http:
                await http.get("https://api.test/v1/me")
            await eventually(lambda: handler.written_total == 1)
            await asyncio.sleep(10 * FAST)  # several more writer ticks
            assert (handler.pending, handler.written_total) == (0, 1)
    finally:
        engine_logger.setLevel(level_before)

    rows = await stored(sessionmaker, service)
    assert [(row.logger, row.message) for row in rows] == [(log.name, "only this one")]
    assert rows[0].context == {}


async def test_what_is_logged_while_a_batch_is_written_is_not_queued_again(
    db_engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], service: str
) -> None:
    """A driver or pool warning during every INSERT must not become the next batch."""
    driver_log = logging.getLogger("playlog.tests.dblog.driver")

    def warn_on_insert(_connection: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.startswith("INSERT INTO logs"):
            driver_log.warning("slow insert")

    event.listen(db_engine.sync_engine, "before_cursor_execute", warn_on_insert)
    try:
        async with database_logging(
            service, DatabaseLogSettings(), sessionmaker, flush_interval=FAST
        ) as handler:
            for number in range(1, 4):
                log.info("record %d", number)
                await eventually(partial(written_at_least, handler, number))
                # Otherwise each flush would queue its own warning for the next one.
                assert (handler.pending, handler.written_total) == (0, number)
    finally:
        event.remove(db_engine.sync_engine, "before_cursor_execute", warn_on_insert)

    rows = await stored(sessionmaker, service)
    assert [row.message for row in rows] == ["record 1", "record 2", "record 3"]


async def test_a_write_cut_short_at_shutdown_is_counted_and_said(
    service: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database that accepts connections and never answers: the final flush gives up."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hanging = create_engine(f"postgresql://playlog@127.0.0.1:{port}/playlog", pool_size=1)
    try:
        async with database_logging(
            service, DatabaseLogSettings(), create_sessionmaker(hanging)
        ) as handler:
            for number in range(30):
                log.warning("record %d", number)
    finally:
        server.close()
        await hanging.dispose()
    assert handler.written_total == 0
    assert handler.dropped_write_failed == 30
    assert (
        f"playlog-{service}: shutting down with 30 log records not stored"
        in capsys.readouterr().err
    )
