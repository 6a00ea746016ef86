"""Importing an export ZIP for a user: the one code path of the CLI and of import jobs.

A reader thread inflates and parses members into batches of staged rows while the event
loop copies them into PostgreSQL, so parsing the next member overlaps the database's
work on the previous one. The queue between them is bounded: memory stays flat however
large the export. Each member is one transaction; a member that fails to parse is rolled
back and named in the report.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from playlog.errors import NotFound
from playlog.exports import loader
from playlog.exports.archive import (
    ExportArchive,
    ExportRejected,
    HistoryMember,
    MemberFailed,
    MemberRead,
)
from playlog.exports.records import MemberRows
from playlog.exports.report import ImportReport, MemberReport
from playlog.settings import ImportSettings

BATCH_ROWS = 8192
# Messages the reader may run ahead of the database by.
QUEUE_DEPTH = 8
PROGRESS_EVERY_S = 1.0


class ImportCancelled(Exception):
    """Raised by a hook to stop an import; stored members stay, the current one is undone."""


@dataclass
class Progress:
    bytes_done: int
    bytes_total: int
    records_done: int
    plays_inserted: int


class ImportHooks(Protocol):
    async def member_stored(
        self, connection: asyncpg.Connection, member: MemberReport, so_far: list[MemberReport]
    ) -> None:
        """Runs inside a member's transaction, just before it commits."""

    async def progress(self, progress: Progress) -> None:
        """Runs about once a second between database steps; may raise ImportCancelled."""


# Reader → loop messages.
@dataclass
class _Begin:
    member: HistoryMember


@dataclass
class _Rows:
    rows: list[tuple[Any, ...]]


@dataclass
class _End:
    member: HistoryMember
    rows: MemberRows
    read: MemberRead


@dataclass
class _Known:
    member: HistoryMember
    digest: str


@dataclass
class _Failed:
    member: HistoryMember
    error: str


@dataclass
class _Abort:
    error: BaseException


class _Done:
    pass


Message = _Begin | _Rows | _End | _Known | _Failed | _Abort | _Done


class _Stopped(Exception):
    pass


@dataclass
class _Reader:
    """The thread side: reads members in order and sends what it found."""

    archive: ExportArchive
    known: dict[tuple[int, int], set[str]]
    keep_sensitive: bool
    max_records: int
    send: Callable[[Message], None]
    stop: threading.Event
    records: int = 0
    position: float = 0.0
    _items: set[str] = field(default_factory=set)

    def run(self) -> None:
        try:
            for member in self.archive.members:
                self._member(member)
                self.position += member.compressed_size
            self.send(_Done())
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the loop, which re-raises it there
            self.send(_Abort(exc))

    def _member(self, member: HistoryMember) -> None:
        info = member.info
        candidates = self.known.get((info.CRC, info.file_size))
        if candidates:
            try:
                digest = self.archive.digest(member)
            except MemberFailed as exc:
                self.send(_Failed(member, str(exc)))
                return
            if digest in candidates:
                self.send(_Known(member, digest))
                return
        rows = MemberRows(member.format, self._items, keep_sensitive=self.keep_sensitive)
        read = MemberRead()
        self.send(_Begin(member))
        try:
            for record in self.archive.records(member, read):
                rows.add(record)
                if len(rows.rows) >= BATCH_ROWS:
                    self._check_cap(rows)
                    self.send(_Rows(rows.take_rows()))
            self._check_cap(rows)
        except MemberFailed as exc:
            self.send(_Failed(member, str(exc)))
            return
        self.records += rows.records
        if rows.rows:
            self.send(_Rows(rows.take_rows()))
        self.send(_End(member, rows, read))
        self._items.update(rows.items)

    def _check_cap(self, rows: MemberRows) -> None:
        if self.records + rows.records > self.max_records:
            raise ExportRejected(
                f"the export holds more than IMPORT_MAX_RECORDS ({self.max_records}) records"
            )


class _Channel:
    """A bounded hand-over from the reader thread to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._slots = threading.Semaphore(QUEUE_DEPTH)
        self._stop = stop

    def send(self, message: Message) -> None:
        while not self._slots.acquire(timeout=0.1):
            if self._stop.is_set():
                raise _Stopped
        if self._stop.is_set():
            raise _Stopped
        self._loop.call_soon_threadsafe(self._queue.put_nowait, message)

    async def receive(self) -> Message:
        message = await self._queue.get()
        self._slots.release()
        return message


async def import_export(
    engine: AsyncEngine,
    user_id: uuid.UUID,
    path: Path,
    settings: ImportSettings,
    *,
    job_id: uuid.UUID | None = None,
    hooks: ImportHooks | None = None,
) -> ImportReport:
    """Import the export at ``path`` for ``user_id`` and return the report.

    Raises :class:`ExportRejected` when the file as a whole is refused (nothing stored),
    :class:`NotFound` for an unknown user, and :class:`ImportCancelled` when a hook
    cancels. Members stored before a cancellation stay stored; a re-run skips them.
    """
    started = time.monotonic()
    archive = await asyncio.to_thread(ExportArchive, path, settings)
    with archive:
        async with engine.connect() as wrapper:
            raw = await wrapper.get_raw_connection()
            connection: asyncpg.Connection = raw.driver_connection
            if not await connection.fetchval("SELECT 1 FROM users WHERE id = $1", user_id):
                raise NotFound(f"no user with id {user_id}")
            await loader.prepare(connection)
            run = _Run(connection, user_id, job_id, archive, hooks or _NoHooks())
            files = await run.execute(settings)
    return ImportReport.build(files, ignored=archive.ignored, elapsed_s=time.monotonic() - started)


class _NoHooks:
    async def member_stored(
        self, connection: asyncpg.Connection, member: MemberReport, so_far: list[MemberReport]
    ) -> None:
        return None

    async def progress(self, progress: Progress) -> None:
        return None


class _Run:
    def __init__(
        self,
        connection: asyncpg.Connection,
        user_id: uuid.UUID,
        job_id: uuid.UUID | None,
        archive: ExportArchive,
        hooks: ImportHooks,
    ) -> None:
        self.connection = connection
        self.user_id = user_id
        self.job_id = job_id
        self.archive = archive
        self.hooks = hooks
        self.files: list[MemberReport] = []
        self.known_reports: dict[str, tuple[dict[str, Any], uuid.UUID | None]] = {}
        self._transaction: Any = None
        self._staged = 0
        self._last_progress = time.monotonic()

    async def execute(self, settings: ImportSettings) -> list[MemberReport]:
        known: dict[tuple[int, int], set[str]] = {}
        for row in await self.connection.fetch(
            "SELECT crc32, size_bytes, digest, report, import_job_id FROM imported_members "
            "WHERE user_id = $1",
            self.user_id,
        ):
            known.setdefault((row[0], row[1]), set()).add(row[2])
            self.known_reports[row[2]] = (_json(row[3]), row[4])
        stop = threading.Event()
        channel = _Channel(asyncio.get_running_loop(), stop)
        reader = _Reader(
            self.archive,
            known,
            settings.import_keep_sensitive_fields,
            settings.import_max_records,
            channel.send,
            stop,
        )
        thread = threading.Thread(target=reader.run, name="playlog-import-reader", daemon=True)
        thread.start()
        try:
            while not isinstance(message := await channel.receive(), _Done):
                await self._handle(message)
                await self._maybe_progress(reader)
        finally:
            stop.set()
            await self._rollback()
            await asyncio.to_thread(thread.join)
        return self.files

    async def _handle(self, message: Message) -> None:
        if isinstance(message, _Begin):
            self._transaction = self.connection.transaction()
            await self._transaction.start()
            await loader.lock_history(self.connection, self.user_id)
            self._staged = 0
        elif isinstance(message, _Rows):
            await loader.stage(self.connection, message.rows)
            self._staged += len(message.rows)
        elif isinstance(message, _End):
            await self._store(message)
        elif isinstance(message, _Known):
            self.files.append(self._known(message))
        elif isinstance(message, _Failed):
            await self._rollback()
            self.files.append(
                MemberReport(
                    name=message.member.name,
                    format=message.member.format,
                    status="failed",
                    error=message.error,
                )
            )
        elif isinstance(message, _Abort):
            raise message.error

    async def _store(self, message: _End) -> None:
        member, rows = message.member, message.rows
        counts = loader.MemberCounts(staged=self._staged)
        span = (rows.earliest, rows.latest) if rows.earliest and rows.latest else None
        await loader.store(
            self.connection, self.user_id, member.format, list(rows.items.values()), counts, span
        )
        report = MemberReport(
            name=member.name,
            format=member.format,
            status="imported",
            records=rows.records,
            plays_inserted=counts.new_plays,
            duplicates=counts.duplicates,
            cross_source_duplicates=counts.cross_source,
            replaced=counts.replaced,
            skipped=dict(rows.skipped),
            earliest=rows.earliest,
            latest=rows.latest,
        )
        await self.connection.execute(
            "INSERT INTO imported_members (user_id, digest, crc32, size_bytes, name, format, "
            "import_job_id, report) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT DO NOTHING",
            self.user_id,
            message.read.digest,
            member.info.CRC,
            member.size,
            member.name,
            member.format,
            self.job_id,
            report.model_dump_json(),
        )
        await self.hooks.member_stored(self.connection, report, [*self.files, report])
        await self._transaction.commit()
        self._transaction = None
        self.files.append(report)

    def _known(self, message: _Known) -> MemberReport:
        stored, job_id = self.known_reports[message.digest]
        first = MemberReport.model_validate(stored)
        if self.job_id is not None and job_id == self.job_id:
            # Stored by an earlier run of this same job (its worker died): count it as ours.
            return first.model_copy(update={"name": message.member.name})
        return MemberReport(
            name=message.member.name,
            format=message.member.format,
            status="already_imported",
            records=first.records,
            duplicates=first.records - sum(first.skipped.values()),
            skipped=first.skipped,
            earliest=first.earliest,
            latest=first.latest,
        )

    async def _rollback(self) -> None:
        if self._transaction is not None:
            transaction, self._transaction = self._transaction, None
            await transaction.rollback()

    async def _maybe_progress(self, reader: _Reader) -> None:
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_EVERY_S:
            return
        self._last_progress = now
        await self.hooks.progress(
            Progress(
                bytes_done=int(reader.position),
                bytes_total=self.archive.size,
                records_done=reader.records,
                plays_inserted=sum(f.plays_inserted for f in self.files),
            )
        )


def _json(value: Any) -> dict[str, Any]:
    # asyncpg hands jsonb over as text unless a codec is set.
    return value if isinstance(value, dict) else json.loads(value)
