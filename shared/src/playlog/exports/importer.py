"""Importing an export ZIP for a user: the one code path of the CLI and of import jobs.

A reader process (:mod:`playlog.exports.reader`) inflates and parses members into
COPY-ready batches of staged rows while this process copies them into PostgreSQL, so
parsing the next member overlaps the database's work on the previous one, on another
core. The queue between them is bounded: memory stays flat however large the export.
Each member is one transaction; a member that fails to parse is rolled back and named in
the report. The reader never outlives the import, whatever ends it. A reader that crashes
(a parser that segfaults on a hostile member, or a process killed from outside) is
replaced, and the member it was on is read again by the new one; a member that ends two
readers is reported as failed and the import goes on after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncpg
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from playlog.errors import NotFound
from playlog.exports import loader
from playlog.exports.archive import ExportArchive, ExportRejected, first_line
from playlog.exports.reader import (
    Abort,
    Begin,
    Done,
    End,
    ExportReaderFailed,
    Failed,
    Known,
    Limits,
    Message,
    ReaderCrashed,
    ReaderJob,
    ReaderProcess,
    Rows,
)
from playlog.exports.report import ImportReport, MemberReport, Totals, rows_staged
from playlog.settings import ImportSettings

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 1.0
# What a record's values can make the database refuse (a value it cannot store, a key
# too large for an index): the member fails alone, like one that cannot be parsed. The
# reader keeps such values out; this is the net under it.
_REFUSED = (asyncpg.DataError, asyncpg.ProgramLimitExceededError)
# Reader crashes one import survives: each member is read at most twice, so this is
# three members that crash the reader, or as many readers killed from outside.
MAX_READER_CRASHES = 6


class ImportCancelled(Exception):
    """Raised by a hook to stop an import; stored members stay, the current one is undone."""


@dataclass
class Progress:
    bytes_done: int
    bytes_total: int
    records_done: int
    plays_inserted: int
    # The members handled so far: the import's own list, which grows as it goes on.
    files: list[MemberReport]


class ImportHooks(Protocol):
    async def member_stored(
        self, connection: asyncpg.Connection, member: MemberReport, totals: Totals
    ) -> None:
        """Runs inside a member's transaction, just before it commits; ``totals`` are
        those of the import with this member."""

    async def progress(self, progress: Progress) -> None:
        """Runs about once a second between database steps; may raise ImportCancelled."""


async def _refresh(engine: AsyncEngine, connection: asyncpg.Connection) -> None:
    """The closing refresh (loader.refresh_for_queries) on ``connection`` and a second
    one, or on ``connection`` alone when no second is to be had: every member is stored
    by now, so nothing here may fail the import."""
    async with contextlib.AsyncExitStack() as stack:
        connections = [connection]
        try:
            second = await stack.enter_async_context(engine.connect())
            connections.append((await second.get_raw_connection()).driver_connection)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("refreshing on one connection: no second one (%s)", type(exc).__name__)
        await loader.refresh_for_queries(connections)


async def import_export(
    engine: AsyncEngine,
    user_id: uuid.UUID,
    path: Path,
    settings: ImportSettings,
    *,
    job_id: uuid.UUID | None = None,
    hooks: ImportHooks | None = None,
    files: list[MemberReport] | None = None,
    ignored: list[str] | None = None,
) -> ImportReport:
    """Import the export at ``path`` for ``user_id`` and return the report.

    ``files``, when given, receives each member's report as the member is handled, and
    ``ignored`` the names of the files that are not history once the ZIP is open, so a
    caller still knows them when the import stops half-way.

    Raises :class:`ExportRejected` when the file is refused (on opening it: nothing
    stored; while reading it: the message names what stays),
    :class:`NotFound` for an unknown user, :class:`ImportCancelled` when a hook cancels,
    and :class:`~playlog.exports.reader.ExportReaderFailed` when the reader process
    cannot run or crashes more than :data:`MAX_READER_CRASHES` times.
    Members stored before any of these stay stored; a re-run skips them.
    """
    started = time.monotonic()
    # First, so the reader's interpreter starts while this side opens the file.
    readers = _Readers(await ReaderProcess.start())
    try:
        archive = await asyncio.to_thread(ExportArchive, path, settings)
        if ignored is not None:
            ignored.extend(archive.ignored)
        with archive:
            async with engine.connect() as wrapper:
                raw = await wrapper.get_raw_connection()
                connection: asyncpg.Connection = raw.driver_connection
                if not await connection.fetchval("SELECT 1 FROM users WHERE id = $1", user_id):
                    raise NotFound(f"no user with id {user_id}")
                await loader.prepare(connection)
                run = _Run(connection, user_id, job_id, archive, hooks or _NoHooks(), files)
                handled = await run.execute(settings, readers)
                inserted = run.totals.plays_inserted + run.totals.skips_inserted
                if await loader.needs_refresh(connection, inserted):
                    await _refresh(engine, connection)
    finally:
        await readers.current.close()
    return ImportReport.build(
        handled, ignored=archive.ignored, elapsed_s=time.monotonic() - started
    )


class _Readers:
    """The import's reader process, replaced when one crashes."""

    def __init__(self, first: ReaderProcess) -> None:
        self.current = first

    async def replace(self) -> ReaderProcess:
        await self.current.close()
        self.current = await ReaderProcess.start()
        return self.current


class _NoHooks:
    async def member_stored(
        self, connection: asyncpg.Connection, member: MemberReport, totals: Totals
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
        files: list[MemberReport] | None,
    ) -> None:
        self.connection = connection
        self.user_id = user_id
        self.job_id = job_id
        self.archive = archive
        self.hooks = hooks
        self.files: list[MemberReport] = [] if files is None else files
        self.totals = Totals()
        self.known_reports: dict[str, tuple[dict[str, Any], uuid.UUID | None]] = {}
        # Digests of members an earlier run of this job stored that this run has counted
        # as its own: a second copy of one in the same file is a duplicate, as it was then.
        self._reclaimed: set[str] = set()
        self._transaction: Any = None
        # Why the database refused the current member, once it has.
        self._refused: str | None = None
        # Compressed bytes of the members handled so far, and how far into the member
        # being staged (the first without an outcome, ``_next``) the import is.
        self._position = 0
        self._current_records = 0
        self._current_inflated = 0
        # The first member without its outcome yet (the one a crashed reader was on),
        # the records read by the members before it, and the members a reader crashed on.
        self._next = 0
        self._records_read = 0
        self._crashed_on: list[int] = []
        self._last_progress = time.monotonic()

    async def execute(self, settings: ImportSettings, readers: _Readers) -> list[MemberReport]:
        known: dict[str, list[str]] = {}
        for row in await self.connection.fetch(
            "SELECT crc32, size_bytes, digest, report, import_job_id FROM imported_members "
            "WHERE user_id = $1",
            self.user_id,
        ):
            known.setdefault(f"{row[0]}:{row[1]}", []).append(row[2])
            self.known_reports[row[2]] = (_json(row[3]), row[4])
        reader = readers.current
        try:
            while True:
                await reader.send(self._job(settings, known))
                try:
                    while not isinstance(message := await reader.receive(), Done):
                        await self._handle(message)
                        await self._maybe_progress()
                    return self.files
                except ReaderCrashed as crash:
                    await self._rollback()
                    if self._next < len(self.archive.members):
                        await self._after_crash(crash)
                    if self._next >= len(self.archive.members):
                        return self.files
                reader = await readers.replace()
        finally:
            await self._rollback()

    def _job(self, settings: ImportSettings, known: dict[str, list[str]]) -> ReaderJob:
        """The reader's job, from the first member without an outcome."""
        return ReaderJob(
            str(self.archive.path),
            Limits.of(settings),
            known,
            settings.import_keep_sensitive_fields,
            settings.import_max_records,
            start=self._next,
            records_before=self._records_read,
        )

    async def _after_crash(self, crash: ReaderCrashed) -> None:
        """Count the crash against the member the reader was on: read again the first
        time, failed the second; too many crashes stop the import."""
        index = self._next
        self._crashed_on.append(index)
        log.warning(
            "the export reader stopped (%s) while reading %s",
            crash.status,
            self.archive.members[index].name[:200],
            extra={"crashes": len(self._crashed_on)},
        )
        if len(self._crashed_on) > MAX_READER_CRASHES:
            raise ExportReaderFailed(
                f"the export reader stopped {len(self._crashed_on)} times, the last time "
                f"({crash.status}) while reading {self.archive.members[index].name}"
            ) from crash
        if self._crashed_on.count(index) == 2:
            await self._fail(
                index, f"could not be read: it stopped the export reader twice ({crash.status})"
            )
            self._finished(index)

    async def _handle(self, message: Message) -> None:
        if isinstance(message, Begin):
            self._transaction = self.connection.transaction()
            await self._transaction.start()
            self._refused = None
            await loader.begin_member(self.connection)
        elif isinstance(message, Rows):
            self._current_records, self._current_inflated = message.records, message.inflated
            if self._refused is None:
                try:
                    await loader.stage(self.connection, message.data)
                except _REFUSED as exc:
                    self._refused = first_line(exc)
        elif isinstance(message, End):
            self._records_read += message.records
            if self._refused is None:
                try:
                    await self._store(message)
                except _REFUSED as exc:
                    self._refused = first_line(exc)
            if self._refused is not None:
                await self._fail(message.index, f"the database refused a record: {self._refused}")
            self._finished(message.index)
        elif isinstance(message, Known):
            self._add(self._known(message))
            self._finished(message.index)
        elif isinstance(message, Failed):
            await self._fail(message.index, message.error)
            self._finished(message.index)
        elif isinstance(message, Abort):
            raise self._refusal(message.error)

    async def _store(self, message: End) -> None:
        member = self.archive.members[message.index]
        counts = loader.MemberCounts(staged=rows_staged(message.records, message.skipped))
        span = (message.earliest, message.latest) if message.earliest and message.latest else None
        await loader.store(
            self.connection, self.user_id, member.format, message.items or None, counts, span
        )
        report = MemberReport(
            name=member.name,
            format=member.format,
            status="imported",
            records=message.records,
            plays_inserted=counts.new_plays,
            skips_inserted=counts.new_skips,
            duplicates=counts.duplicates,
            cross_source_duplicates=counts.cross_source,
            replaced=counts.replaced,
            skipped=message.skipped,
            earliest=message.earliest,
            latest=message.latest,
        )
        await self.connection.execute(
            "INSERT INTO imported_members (user_id, digest, crc32, size_bytes, name, format, "
            "import_job_id, report) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT DO NOTHING",
            self.user_id,
            message.digest,
            member.info.CRC,
            member.size,
            member.name,
            member.format,
            self.job_id,
            report.model_dump_json(),
        )
        totals = self.totals.plus(report)
        await self.hooks.member_stored(self.connection, report, totals)
        await self._transaction.commit()
        self._transaction = None
        self.files.append(report)
        self.totals = totals

    def _refusal(self, error: BaseException) -> BaseException:
        """A limit found while reading (the record cap, or more inflated bytes than
        allowed) refuses the rest of the file; the message says what stays stored."""
        stored = [member for member in self.files if member.status == "imported"]
        if not stored or not isinstance(error, ExportRejected):
            return error
        plays = sum(member.plays_inserted for member in stored)
        skips = sum(member.skips_inserted for member in stored)
        return ExportRejected(
            f"{error.message}; the {len(stored)} history file(s) read before it stay stored "
            f"({plays} new plays, {skips} skips), nothing after them was imported"
        )

    def _finished(self, index: int) -> None:
        self._position += self.archive.members[index].compressed_size
        self._next = index + 1
        self._current_records = self._current_inflated = 0

    def _within_current(self) -> int:
        """The compressed bytes of the current member read so far, in proportion to its
        inflated bytes (a member is compressed about evenly)."""
        if not self._current_inflated:
            return 0
        member = self.archive.members[self._next]
        share = min(self._current_inflated / member.size, 1.0)
        return int(member.compressed_size * share)

    async def _fail(self, index: int, error: str) -> None:
        """The member is undone and reported as failed; the import goes on."""
        await self._rollback()
        member = self.archive.members[index]
        self._add(
            MemberReport(name=member.name, format=member.format, status="failed", error=error)
        )

    def _add(self, member: MemberReport) -> None:
        self.files.append(member)
        self.totals.add(member)

    def _known(self, message: Known) -> MemberReport:
        member = self.archive.members[message.index]
        stored, job_id = self.known_reports[message.digest]
        first = MemberReport.model_validate(stored)
        if (
            self.job_id is not None
            and job_id == self.job_id
            and message.digest not in self._reclaimed
        ):
            # Stored by an earlier run of this same job (its worker died): count it as ours.
            self._reclaimed.add(message.digest)
            return first.model_copy(update={"name": member.name})
        return MemberReport(
            name=member.name,
            format=member.format,
            status="already_imported",
            records=first.records,
            duplicates=rows_staged(first.records, first.skipped),
            skipped=first.skipped,
            earliest=first.earliest,
            latest=first.latest,
        )

    async def _rollback(self) -> None:
        """Undo the current member, its progress included."""
        self._current_records = self._current_inflated = 0
        if self._transaction is not None:
            transaction, self._transaction = self._transaction, None
            await transaction.rollback()

    async def _maybe_progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_EVERY_S:
            return
        self._last_progress = now
        await self.hooks.progress(
            Progress(
                bytes_done=self._position + self._within_current(),
                bytes_total=self.archive.size,
                records_done=self.totals.records + self._current_records,
                plays_inserted=self.totals.plays_inserted,
                files=self.files,
            )
        )


def _json(value: Any) -> dict[str, Any]:
    # asyncpg hands jsonb over as text unless a codec is set.
    return value if isinstance(value, dict) else json.loads(value)
